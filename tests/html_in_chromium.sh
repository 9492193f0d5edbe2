#!/usr/bin/env bash
# Opens a run's report.html (or any splitguard HTML page) in headless
# Chromium (Debian's `chromium` package) and fails when the page logs a
# console message, fails to load something, or refers to a file instead of
# inlining it. Not part of CI (it needs a browser):
#
#   apt-get install -y chromium
#   cargo run --release -- run recipes/quickstart.yaml
#   tests/html_in_chromium.sh checkpoints/quickstart
#
# Usage: tests/html_in_chromium.sh RUN_DIR|PAGE.html [SCREENSHOT.png]
# Exit codes: 0 rendered cleanly, 1 problems found, 2 bad arguments or no browser.
set -euo pipefail

target=${1:?usage: tests/html_in_chromium.sh RUN_DIR|PAGE.html [SCREENSHOT.png]}
if [[ -d $target ]]; then
    page=$target/report.html
else
    page=$target
fi
if [[ ! -f $page ]]; then
    echo "html_in_chromium: $page: no such file (is the run finished?)" >&2
    exit 2
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
    echo "html_in_chromium: $chromium not found; apt-get install -y chromium (or set CHROMIUM)" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url="file://$(realpath "$page")"
shot=${2:-$work/page.png}

browse() {
    # A fresh profile each time; no network, no sync, no extensions.
    timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --user-data-dir="$(mktemp -d -p "$work")" \
        --enable-logging=stderr --v=0 "$@" "$url"
}

status=0
if ! browse --dump-dom >"$work/dom.html" 2>"$work/dom.log"; then
    echo "html_in_chromium: chromium failed on $page:" >&2
    tail -5 "$work/dom.log" >&2
    exit 1
fi
if ! browse --window-size=1280,4000 --screenshot="$shot" >/dev/null 2>"$work/shot.log"; then
    echo "html_in_chromium: chromium could not take a screenshot of $page" >&2
    status=1
fi

# Console messages (the page has no script, so any is a problem), network
# errors and script errors. D-Bus noise from a container is not the page's.
if grep -hE ':CONSOLE[:(]|net::ERR_|Uncaught|Failed to load|Not allowed to load' \
    "$work/dom.log" "$work/shot.log" >"$work/errors.txt"; then
    echo "html_in_chromium: console errors on $page:" >&2
    cat "$work/errors.txt" >&2
    status=1
fi
if ! grep -q '</html>' "$work/dom.html"; then
    echo "html_in_chromium: $page: the DOM Chromium built has no </html>" >&2
    status=1
fi
# Every picture inlined: no src/href pointing at a file.
if grep -oE '(src|href)="[^"]*"' "$work/dom.html" | grep -v '="data:' >"$work/refs.txt"; then
    echo "html_in_chromium: $page refers to files instead of inlining them:" >&2
    cat "$work/refs.txt" >&2
    status=1
fi
if [[ ! -s $shot ]]; then
    echo "html_in_chromium: no screenshot written" >&2
    status=1
fi

# (grep finds nothing: a count of 0, not a failure)
count() { grep -o "$1" "$work/dom.html" | wc -l || true; }
tables=$(count '<table>')
svgs=$(count '<svg ')
imgs=$(count '<img ')
if [[ $status -eq 0 ]]; then
    echo "ok: $page renders in $("$chromium" --version 2>/dev/null | head -1) without console errors ($tables tables, $svgs inline SVG plots, $imgs inline images; screenshot $shot)"
fi
exit $status
