//! This crate built as a real shared library, loaded by riffle and run on an embedded
//! cluster with exact results; libraries that are not riffle plugins, or of another ABI, are
//! refused with a clear error and no crash.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use riffle_cluster::{plugin, JobStatus, MiniCluster, MiniClusterConfig};

/// The cdylib cargo built for this test: always in target/<profile>/deps/ (beside this test's
/// own binary); copied up to target/<profile>/ only when the crate itself was a build root.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let file = format!("{}riffle_plugin_template{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let candidates: Vec<PathBuf> = [Some(deps), deps.parent()].into_iter().flatten().map(|d| d.join(&file)).collect();
    match candidates.iter().find(|p| p.is_file()) {
        Some(lib) => lib.clone(),
        None => panic!("the plugin library was not built at any of {candidates:?}"),
    }
}

#[test]
fn the_template_plugin_loads_and_its_job_runs_with_exact_results() {
    let p = plugin::load(&library()).expect("the template plugin loads");
    let names: Vec<&str> = p.jobs().iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["sums", "restarts"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    let args: Vec<String> = ["1000", "7", out.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
    let graph = p.build("sums", &args).expect("the plugin builds its job");
    let mc = MiniCluster::start(MiniClusterConfig::new(1, 2)).unwrap();
    let r = mc.submit(graph).unwrap().wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    // A running sum per key: the largest line per key is the total.
    let mut got: BTreeMap<u64, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let (k, v) = line.split_once(',').unwrap();
        let e = got.entry(k.parse().unwrap()).or_default();
        *e = (*e).max(v.parse().unwrap());
    }
    let want: BTreeMap<u64, u64> = (0..7).map(|k| (k, (0..1000u64).filter(|i| i % 7 == k).sum())).collect();
    assert_eq!(got, want);
    // User errors of the plugin's builder, and unknown entries, are clear.
    let e = p.build("sums", &["x".into()]).unwrap_err().to_string();
    assert!(e.contains("expects three arguments"), "{e}");
    let e = p.build("nope", &[]).unwrap_err().to_string();
    assert!(e.contains("has no job 'nope'") && e.contains("sums"), "{e}");
    drop(mc);
}

#[test]
fn libraries_that_are_not_riffle_plugins_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // Not a library at all.
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    let e = plugin::load(&junk).unwrap_err().to_string();
    assert!(e.contains("not a loadable library"), "{e}");
    // Missing, and a directory.
    assert!(plugin::load(&dir.path().join("missing.so")).unwrap_err().to_string().contains("cannot read"));
    assert!(plugin::load(dir.path()).unwrap_err().to_string().contains("not a file"));
    // A real shared library that is not a riffle plugin, and one declaring another ABI:
    // built from C with the system compiler.
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let build = |name: &str, src: &str| -> PathBuf {
        let c = dir.path().join(format!("{name}.c"));
        let so = dir.path().join(format!("lib{name}.so"));
        std::fs::write(&c, src).unwrap();
        let ok = std::process::Command::new(&cc)
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&c)
            .status()
            .expect("a C compiler runs");
        assert!(ok.success(), "cc failed");
        so
    };
    let plain = build("plain", "int answer(void) { return 42; }\n");
    let e = plugin::load(&plain).unwrap_err().to_string();
    assert!(e.contains("exports no riffle plugin declaration"), "{e}");
    let other_abi = build(
        "other_abi",
        "struct decl { unsigned int abi; const char *junk; };\n\
         const struct decl riffle_plugin_declaration_v1 = { 999, \"from the future\" };\n",
    );
    let e = plugin::load(&other_abi).unwrap_err().to_string();
    assert!(e.contains("plugin ABI 999") && e.contains("reads 2"), "{e}");
}
