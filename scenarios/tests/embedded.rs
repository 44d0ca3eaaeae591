//! The embedding example runs inside a caller's tokio runtime and returns exact results.

#[path = "../examples/embedded_service.rs"]
mod example;

#[test]
fn the_embedding_example_runs_in_a_callers_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let requests = vec!["GET /index".to_string(), "get /about".to_string(), "POST /index".to_string(), "".to_string()];
    let got = rt.block_on(example::run_service(requests)).expect("service runs");
    let want: Vec<(String, u64)> =
        vec![("/about".into(), 1), ("/index".into(), 2), ("get".into(), 2), ("post".into(), 1)];
    assert_eq!(got, want);
}
