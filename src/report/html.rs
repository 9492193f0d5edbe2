//! `report.html`: the run's report as one self-contained page (DESIGN
//! section 10, issue 8): it opens from a file, with no server, no network
//! and no script.
//!
//! The page is made from `report.md` itself, by a converter for exactly the
//! Markdown subset [`super::render_markdown`] writes (headings, paragraphs,
//! pipe tables, images, `**bold**`, `` `code` ``), so the two can never
//! disagree on a table. Pictures are inlined: SVG plots as markup, PNG
//! grids as base64 `data:` URIs; a picture that cannot be read becomes a
//! visible note, never a link to a file.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

/// The page's style: readable tables, pictures scaled to the page width.
const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em;display:block;overflow-x:auto;max-width:100%}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
figure{margin:1em 0}figure svg,figure img{max-width:100%;height:auto}\
img{image-rendering:pixelated}figcaption{color:#555;font-size:0.9em}\
code{background:#f3f3f3;padding:0 3px}.missing{color:#a00}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    crate::report::plot::escape_xml(text)
}

/// Renders `markdown` (a `report.md`) as a self-contained HTML page with
/// the pictures it names read from `dir` and inlined.
pub fn render(title: &str, markdown: &str, dir: &Path) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let mut para: Vec<&str> = Vec::new();
    let flush = |s: &mut String, para: &mut Vec<&str>| {
        if !para.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", inline(&para.join(" ")));
            para.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() {
            flush(&mut s, &mut para);
            i += 1;
        } else if let Some((level, text)) = heading(line) {
            flush(&mut s, &mut para);
            let _ = writeln!(s, "<h{level}>{}</h{level}>", inline(text));
            i += 1;
        } else if line.starts_with('|') {
            flush(&mut s, &mut para);
            let start = i;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                i += 1;
            }
            table(&mut s, &lines[start..i]);
        } else if let Some((alt, src)) = image(line.trim()) {
            flush(&mut s, &mut para);
            figure(&mut s, alt, src, dir);
            i += 1;
        } else if let Some(item) = line.strip_prefix("- ") {
            flush(&mut s, &mut para);
            s.push_str("<ul>\n");
            let _ = writeln!(s, "<li>{}</li>", inline(item));
            i += 1;
            while i < lines.len()
                && let Some(item) = lines[i].strip_prefix("- ")
            {
                let _ = writeln!(s, "<li>{}</li>", inline(item));
                i += 1;
            }
            s.push_str("</ul>\n");
        } else {
            para.push(line.trim());
            i += 1;
        }
    }
    flush(&mut s, &mut para);
    s.push_str("</body>\n</html>\n");
    s
}

/// `# text` .. `###### text`.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    match (1..=6).contains(&level) {
        true => line[level..].strip_prefix(' ').map(|t| (level, t)),
        false => None,
    }
}

/// A line that is only `![alt](src)`.
fn image(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("![")?;
    let (alt, rest) = rest.split_once("](")?;
    let src = rest.strip_suffix(')')?;
    (!src.contains(' ')).then_some((alt, src))
}

/// Cells of a `| a | b |` row (pipes escaped as `\|` stay in the cell).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

fn is_separator(row: &str) -> bool {
    cells(row)
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| "-: ".contains(ch)))
}

/// A pipe table: header row, separator row, body rows.
fn table(s: &mut String, rows: &[&str]) {
    s.push_str("<table>\n");
    let (head, body) = match rows {
        [h, sep, rest @ ..] if is_separator(sep) => (Some(*h), rest),
        _ => (None, rows),
    };
    if let Some(h) = head {
        s.push_str("<thead><tr>");
        for c in cells(h) {
            let _ = write!(s, "<th>{}</th>", inline(&c));
        }
        s.push_str("</tr></thead>\n");
    }
    s.push_str("<tbody>\n");
    for r in body {
        s.push_str("<tr>");
        for c in cells(r) {
            let _ = write!(s, "<td>{}</td>", inline(&c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
}

/// A picture, inlined: SVG as markup, others as a base64 `data:` URI.
fn figure(s: &mut String, alt: &str, src: &str, dir: &Path) {
    let path = dir.join(src);
    let ext = Path::new(src)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    s.push_str("<figure>\n");
    let body = match ext.as_str() {
        "svg" => std::fs::read_to_string(&path).ok().map(|svg| {
            // Drop an XML prolog or doctype: inline SVG starts at <svg.
            let start = svg.find("<svg").unwrap_or(0);
            svg[start..].trim_end().to_string()
        }),
        _ => std::fs::read(&path).ok().map(|bytes| {
            let mime = match ext.as_str() {
                "png" => "image/png",
                "jpg" | "jpeg" => "image/jpeg",
                "gif" => "image/gif",
                _ => "application/octet-stream",
            };
            format!(
                "<img alt=\"{}\" src=\"data:{mime};base64,{}\">",
                escape(alt),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        }),
    };
    match body {
        Some(b) => {
            s.push_str(&b);
            s.push('\n');
        }
        None => {
            let _ = writeln!(
                s,
                "<p class=\"missing\">(picture {} could not be read)</p>",
                escape(src)
            );
        }
    }
    let _ = writeln!(s, "<figcaption>{}</figcaption>\n</figure>", inline(alt));
}

/// Inline Markdown: `**bold**` and `` `code` ``, the rest escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let mut bold = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`')
            && let Some(end) = r.find('`')
        {
            let _ = write!(out, "<code>{}</code>", escape(&r[..end]));
            rest = &r[end + 1..];
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push_str(&escape(c.encode_utf8(&mut [0; 4])));
            rest = &rest[c.len_utf8()..];
        }
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_headings_and_inline_markup_convert() {
        let md = "# Title `x`\n\nSome **bold** <text> and `a<b`.\n\n| a | b\\|c |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n";
        let dir = tempfile::tempdir().unwrap();
        let html = render("t", md, dir.path());
        assert!(html.contains("<h1>Title <code>x</code></h1>"));
        assert!(
            html.contains(
                "<p>Some <strong>bold</strong> &lt;text&gt; and <code>a&lt;b</code>.</p>"
            )
        );
        assert!(html.contains("<thead><tr><th>a</th><th>b|c</th></tr></thead>"));
        assert!(html.contains("<tr><td>1</td><td>2</td></tr>"));
        assert!(html.contains("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"));
    }

    #[test]
    fn pictures_are_inlined_and_missing_ones_noted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.svg"),
            "<?xml version=\"1.0\"?>\n<svg a=\"1\"></svg>\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("g.png"), [137u8, 80, 78, 71]).unwrap();
        let md = "![plot](p.svg)\n\n![grid](g.png)\n\n![gone](gone.png)\n";
        let html = render("t", md, dir.path());
        assert!(html.contains("<svg a=\"1\"></svg>") && !html.contains("<?xml"));
        assert!(html.contains("src=\"data:image/png;base64,iVBORw==\""));
        assert!(html.contains("picture gone.png could not be read"));
        assert!(!html.contains("src=\"g.png\"") && !html.contains("src=\"gone.png\""));
    }
}
