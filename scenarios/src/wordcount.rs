//! Word count: the classic first job. Words are the pieces of a line between characters
//! that are neither alphanumeric nor `_`, lowercased; the output has one `word,count` line
//! per distinct word with its final count.

use std::collections::HashMap;
use std::path::PathBuf;

use compact_str::CompactString;

use riffle_api::generators::word;
use riffle_api::{
    Collector, KeyedProcessFunction, ProcessContext, StreamEnvironment, TimeDomain, UserError, MAX_WATERMARK,
};

/// The words of a line.
pub fn tokenize(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// The words of a line as the job carries them: a word of up to 24 bytes is held inline, so
/// splitting, keying and counting it allocates nothing (the strings of `tokenize` cost a
/// `malloc` and a `free` on another thread per word).
pub fn words(line: &str) -> impl Iterator<Item = CompactString> + '_ {
    line.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(|w| {
        if w.is_ascii() {
            let mut lower = CompactString::from(w);
            lower.as_mut_str().make_ascii_lowercase();
            lower
        } else {
            CompactString::from(w.to_lowercase())
        }
    })
}

/// The straightforward reference computation the job must agree with.
pub fn reference_wordcount(text: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for line in text.lines() {
        for w in tokenize(line) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Counts per word in keyed state and emits each word's final count once, when the final
/// watermark at the end of the input fires its timer.
#[derive(Clone, Default)]
pub struct FinalCount;

impl KeyedProcessFunction<CompactString, CompactString, (CompactString, u64)> for FinalCount {
    fn process_element(
        &mut self,
        _: CompactString,
        ctx: &mut ProcessContext<'_, CompactString, (CompactString, u64)>,
    ) -> Result<(), UserError> {
        let count = ctx.state().value_state::<u64>("count")?;
        let c = count.get_mut(ctx.state())?;
        match c {
            Some(c) => *c += 1,
            None => {
                count.set(ctx.state(), 1)?;
                ctx.register_event_time_timer(MAX_WATERMARK - 1);
            }
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, CompactString, (CompactString, u64)>,
    ) -> Result<(), UserError> {
        let count = ctx.state().value_state::<u64>("count")?;
        let c = count.clear(ctx.state())?.unwrap_or(0);
        let w = ctx.key().clone();
        ctx.collect((w, c));
        Ok(())
    }
}

/// Where the words come from.
pub enum Input {
    /// A text file or a directory of text files.
    File(PathBuf),
    /// The benchmark word generator, events `0..n` (one word per event).
    Generated(u64),
}

/// Defines the word count job on `env`, writing `word,count` lines to `output`.
pub fn define(env: &StreamEnvironment, input: Input, output: PathBuf) {
    let lines = match input {
        Input::File(p) => env.read_text_file(p),
        Input::Generated(0) => env.from_collection(Vec::new()),
        Input::Generated(n) => env.from_sequence(0, n - 1).map(word).name("Word Generator"),
    };
    lines
        .flat_map(|line: String, out: &mut Collector<'_, CompactString>| {
            for w in words(&line) {
                out.collect(w);
            }
        })
        .name("Tokenize")
        .key_by(|w: &CompactString| w.clone())
        .process(FinalCount)
        .name("Count")
        .write_as_text(output, |(w, c): &(CompactString, u64)| format!("{w},{c}"))
        .set_parallelism(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_splits_lowercases_and_keeps_underscores() {
        let w: Vec<String> = tokenize("Hello, wörld! snake_case--ÉTÉ  x2").collect();
        assert_eq!(w, ["hello", "wörld", "snake_case", "été", "x2"]);
        assert_eq!(tokenize("  ,,; ").count(), 0);
    }

    #[test]
    fn words_are_the_tokens_of_tokenize() {
        let line = "Hello, wörld! snake_case--ÉTÉ  x2 A_VERY_LONG_IDENTIFIER_OF_MORE_THAN_24_BYTES";
        let a: Vec<String> = tokenize(line).collect();
        let b: Vec<String> = words(line).map(String::from).collect();
        assert_eq!(a, b);
    }
}
