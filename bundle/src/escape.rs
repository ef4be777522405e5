//! Showing untrusted text on a terminal. A bundle that has not been verified may carry
//! any string in its manifest; printed raw, an escape sequence could rewrite the screen
//! (hide a line, fake "verified") and a bidirectional override could reorder what the
//! operator reads. [`Escaped`] prints such strings with every control character visible.

use std::fmt;

/// Displays a string with C0 controls, DEL, C1 controls, bidirectional controls, line and
/// paragraph separators and backslashes escaped (`\x1b`, `\u{202e}`, `\\`); everything
/// else as is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// True for characters that [`Escaped`] never prints raw.
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\\'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                c if c.is_ascii() && needs_escape(c) => write!(f, "\\x{:02x}", c as u32)?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

/// Makes serialised JSON safe for a terminal: the characters [`Escaped`] escapes that
/// serde_json leaves raw (DEL, C1, bidirectional controls; it already escapes C0) become
/// `\uXXXX` escapes. They can only occur inside JSON strings, so the document means the
/// same; structural whitespace (newlines, indentation) is left alone.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c == '\u{7f}' || (!c.is_ascii() && needs_escape(c)) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_visible() {
        let shown = Escaped("a\u{1b}[2Jb\u{7f}\u{9b}\u{202e}c\\d\n").to_string();
        assert_eq!(shown, "a\\x1b[2Jb\\x7f\\u{9b}\\u{202e}c\\\\d\\x0a");
        assert_eq!(Escaped("2.35.3 é").to_string(), "2.35.3 é");
    }

    #[test]
    fn json_stays_json() {
        let value = vec!["x\u{1b}\u{7f}\u{9b}\u{202e}"];
        let text = serde_json::to_string_pretty(&value).expect("json");
        let safe = json_for_terminal(&text);
        let raw = |c: char| c != '\\' && c != '\n' && needs_escape(c);
        assert!(!safe.chars().any(raw), "{safe}");
        let back: Vec<String> = serde_json::from_str(&safe).expect("parse");
        assert_eq!(back, value);
    }
}
