//! Where CSV records end: a record may span lines when a quoted field holds a line break. The
//! line-based reader asks, line by line, whether a record ends there, with the same quoting
//! rules as the decoder (a quote opens a field only at its start, `""` inside quotes is a
//! quote, the escape character takes the next byte literally, `#` lines are comments when
//! enabled).

/// The quoting rules of a CSV format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteRules {
    /// The field delimiter.
    pub(crate) delimiter: u8,
    /// The quote character; `None`: quoting disabled.
    pub(crate) quote: Option<u8>,
    /// The escape character inside quotes.
    pub(crate) escape: Option<u8>,
    /// Whether lines starting with `#` are comments.
    pub(crate) comments: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field (`record`: of a record too).
    FieldStart {
        record: bool,
    },
    Unquoted,
    Quoted,
    /// Just after the escape character inside quotes.
    Escaped,
    /// Just after a quote inside quotes: the field's end, or half of `""`.
    QuoteInQuoted,
    Comment,
}

/// Follows the quoting state over consecutive lines.
#[derive(Debug, Clone)]
pub(crate) struct RecordScanner {
    rules: QuoteRules,
    state: State,
}

impl RecordScanner {
    /// A scanner at the start of a record.
    pub(crate) fn new(rules: QuoteRules) -> Self {
        Self { rules, state: State::FieldStart { record: true } }
    }

    /// Back at a record's start (a new chunk starts at one).
    pub(crate) fn reset(&mut self) {
        self.state = State::FieldStart { record: true };
    }

    /// Takes in one line (with its terminator); true when a record ends with it: the line does
    /// not end inside a quoted field. A last line without a terminator always ends its record
    /// (an unterminated quote there is the decoder's to report).
    pub(crate) fn line_ends_record(&mut self, line: &[u8]) -> bool {
        let r = self.rules;
        // The common case, at memchr's speed: a record on one line with no quote in it.
        if self.state == (State::FieldStart { record: true })
            && line.last() == Some(&b'\n')
            && r.quote.is_none_or(|q| memchr::memchr(q, line).is_none())
        {
            return true;
        }
        for &b in line {
            self.state = match self.state {
                State::FieldStart { record } => {
                    if record && r.comments && b == b'#' {
                        State::Comment
                    } else if Some(b) == r.quote {
                        State::Quoted
                    } else if b == r.delimiter {
                        State::FieldStart { record: false }
                    } else if b == b'\n' {
                        State::FieldStart { record: true }
                    } else {
                        State::Unquoted
                    }
                }
                State::Unquoted | State::QuoteInQuoted if b == r.delimiter => State::FieldStart { record: false },
                State::Unquoted | State::QuoteInQuoted | State::Comment if b == b'\n' => {
                    State::FieldStart { record: true }
                }
                State::Unquoted | State::Comment => self.state,
                State::QuoteInQuoted if Some(b) == r.quote => State::Quoted,
                State::QuoteInQuoted => State::Unquoted,
                State::Quoted if Some(b) == r.escape => State::Escaped,
                State::Quoted if Some(b) == r.quote => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                State::Escaped => State::Quoted,
            };
        }
        if line.last() != Some(&b'\n') {
            self.reset();
            return true;
        }
        !matches!(self.state, State::Quoted | State::Escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: QuoteRules = QuoteRules { delimiter: b',', quote: Some(b'"'), escape: None, comments: false };

    /// For each line of `text`, whether a record ends with it.
    fn ends(rules: QuoteRules, text: &str) -> Vec<bool> {
        let mut s = RecordScanner::new(rules);
        text.split_inclusive('\n').map(|l| s.line_ends_record(l.as_bytes())).collect()
    }

    #[test]
    fn a_line_break_inside_quotes_continues_the_record() {
        assert_eq!(ends(RULES, "a,b\nc,\"d\ne\",f\ng\n"), [true, false, true, true]);
        // "" inside quotes is a quote, not the field's end.
        assert_eq!(ends(RULES, "\"x\"\"\ny\"\n1\n"), [false, true, true]);
        assert_eq!(ends(RULES, "\"x\"\"\"\ny\n"), [true, true]);
        // A quote inside an unquoted field is a character.
        assert_eq!(ends(RULES, "ab\"c,d\ne\n"), [true, true]);
        // Two fields each spanning a line break; CRLF.
        assert_eq!(ends(RULES, "\"a\r\n\",\"b\r\nc\"\r\nd\r\n"), [false, false, true, true]);
        // The last line without a terminator ends its record.
        assert_eq!(ends(RULES, "\"open"), [true]);
    }

    #[test]
    fn escapes_comments_and_disabled_quoting() {
        let escaped = QuoteRules { escape: Some(b'\\'), ..RULES };
        assert_eq!(ends(escaped, "\"a\\\"\nb\"\nc\n"), [false, true, true]);
        let comments = QuoteRules { comments: true, ..RULES };
        assert_eq!(ends(comments, "# a \"quote\nx,\"y\nz\"\n"), [true, false, true]);
        let unquoted = QuoteRules { quote: None, ..RULES };
        assert_eq!(ends(unquoted, "\"a\nb\"\n"), [true, true]);
        let semicolon = QuoteRules { delimiter: b';', ..RULES };
        assert_eq!(ends(semicolon, "a;\"b\nc\";d\n"), [false, true]);
    }
}
