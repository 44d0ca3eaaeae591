//! The scenarios give exact results: word count against a reference computation at several
//! parallelisms, the benchmark workloads' self-checks, and q5 independent of parallelism.

use std::collections::HashMap;

use riffle_api::{Configuration, StreamEnvironment};
use riffle_cluster::{MiniCluster, MiniClusterConfig};
use riffle_scenarios::bench::{run_bench, Workload};
use riffle_scenarios::{environment, nexmark, run_job, wordcount};

const TEXT: &str = "The quick brown fox -- jumps over the lazy dog.\n\
\n\
THE DOG, the_dog & the fox: naïve café CAFÉ résumé!\n\
numbers 42 and 42nd; snake_case_words, __dunder__ and a-b-c\n\
    \t  \n\
Ünïcödé words: Straße straße ΑΒΓ αβγ 東京 東京\n";

fn read_counts(path: &std::path::Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(path).expect("output file");
    let mut m = HashMap::new();
    for line in text.lines() {
        let (w, c) = line.rsplit_once(',').expect("word,count");
        assert!(m.insert(w.to_string(), c.parse::<u64>().expect("count")).is_none(), "duplicate line for '{w}'");
    }
    m
}

#[test]
fn wordcount_is_exact_at_parallelism_1_2_and_4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    // Repeat the text so the job sees more than one batch.
    std::fs::write(&input, TEXT.repeat(500)).unwrap();
    let want = wordcount::reference_wordcount(&TEXT.repeat(500));
    assert_eq!(want.get("the"), Some(&(4 * 500)));
    assert_eq!(want.get("the_dog"), Some(&500));
    assert_eq!(want.get("café"), Some(&(2 * 500)));
    assert_eq!(want.get("snake_case_words"), Some(&500));
    for p in [1, 2, 4] {
        let out = dir.path().join(format!("out-{p}.txt"));
        let env = environment(p, &Configuration::new());
        wordcount::define(&env, wordcount::Input::File(input.clone()), out.clone());
        run_job(&env, "wordcount", p, false).unwrap();
        assert_eq!(read_counts(&out), want, "parallelism {p}");
    }
}

#[test]
fn wordcount_of_generated_words_matches_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let env = environment(2, &Configuration::new());
    wordcount::define(&env, wordcount::Input::Generated(25_000), out.clone());
    run_job(&env, "wordcount", 2, false).unwrap();
    let got = read_counts(&out);
    assert_eq!(got.len(), 10_000);
    // Every block of 10000 events hits every word once: 25000 = 2 full blocks + 5000.
    assert_eq!(got.values().sum::<u64>(), 25_000);
    assert_eq!(got.get("w0"), Some(&3));
    assert!(got.values().all(|&c| c == 2 || c == 3));
}

#[test]
fn benchmark_workloads_pass_their_self_checks() {
    for w in [Workload::W1, Workload::W2, Workload::W3, Workload::W4] {
        for p in [1, 2] {
            run_bench(w, 123_457, p, true).unwrap_or_else(|e| panic!("{w} p={p}: {e}"));
        }
    }
}

#[test]
fn bad_benchmark_arguments_are_errors() {
    assert!(run_bench(Workload::W1, 0, 1, false).is_err());
    assert!(run_bench(Workload::W1, 10, 0, false).is_err());
    assert!("W9".parse::<Workload>().is_err());
}

fn q5(p: u32) -> Vec<(i64, i64, u64)> {
    let mc = MiniCluster::start(MiniClusterConfig::new(1, p)).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(p);
    let out = nexmark::hot_items(&env, 60_000).collect();
    let job = mc.submit(env.build_job_graph("q5").unwrap()).unwrap();
    let mut v: Vec<_> = out.collect();
    assert_eq!(job.wait(None).unwrap().status, riffle_cluster::JobStatus::Finished);
    v.sort();
    v
}

#[test]
fn nexmark_q5_is_the_same_at_parallelism_1_and_2() {
    let one = q5(1);
    // 60 s of bids, windows of 10 s every 2 s: ends 2 s .. 70 s after the base time.
    let ends: std::collections::BTreeSet<i64> = one.iter().map(|r| r.0).collect();
    assert_eq!(ends.len(), 34);
    // A full window holds 10000 bids over 1000 auctions: 10 each, so every auction ties.
    let full = riffle_api::generators::BID_BASE_TIME_MS + 20_000;
    assert_eq!(one.iter().filter(|r| r.0 == full).count(), 1000);
    assert!(one.iter().filter(|r| r.0 == full).all(|r| r.2 == 10));
    assert_eq!(q5(2), one);
}
