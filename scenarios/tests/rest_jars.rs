//! Plugins over REST (`/jars`, Flink's paths and shapes): a real plugin library uploaded,
//! listed, run with exact results and deleted; hostile file names, non-plugins, empty and
//! oversized uploads and unknown ids refused.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{get, post_json, request, Response};
use common::template_plugin::template_plugin;
use riffle_cluster::{MiniCluster, MiniClusterConfig};
use serde_json::json;

fn upload(url: &str, filename: &str, bytes: &[u8]) -> Response {
    let boundary = "riffle-test-boundary-7d1c";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    request(url, "POST", "/jars/upload", &[("Content-Type", &ct)], &body)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_plugin_is_uploaded_run_and_deleted_and_bad_uploads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let lib = std::fs::read(template_plugin()).unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2).with_rest();
    cfg.config
        .set("rest.port", "0")
        .set("web.upload.dir", uploads.display().to_string())
        .set("rest.server.max-content-length", (lib.len() + (1 << 20)).to_string());
    let mc = MiniCluster::start(cfg).unwrap();
    let url = mc.rest_url().unwrap();

    // A hostile name is only a label: the file is stored under its content hash.
    let r = upload(&url, "../../../../tmp/riffle-evil-upload.so", &lib);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "success");
    let filename = r.json()["filename"].as_str().unwrap().to_string();
    let id = filename.rsplit('/').next().unwrap().to_string();
    assert!(id.ends_with("_riffle-evil-upload.so") && id.len() == 32 + 1 + "riffle-evil-upload.so".len(), "{id}");
    assert!(!Path::new("/tmp/riffle-evil-upload.so").exists());
    let stored = files_in(&uploads);
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(".so") && !stored[0].contains("evil"), "{stored:?}");

    let jars = get(&url, "/v1/jars").json();
    assert_eq!(jars["files"][0]["id"], id.as_str());
    assert_eq!(jars["files"][0]["name"], "riffle-evil-upload.so");
    assert_eq!(jars["files"][0]["entry"][0]["name"], "sums");

    // Run its job: exact results; a retried submission with the same job id starts nothing.
    let out = dir.path().join("sums.txt");
    let body = json!({"entryClass": "sums", "programArgsList": ["100", "3", out.to_str().unwrap()], "jobId": "0000000000000000000000000000abcd"});
    let r = post_json(&url, &format!("/jars/{id}/run"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["jobid"], "0000000000000000000000000000abcd");
    assert_eq!(post_json(&url, &format!("/jars/{id}/run"), &body).json()["jobid"], "0000000000000000000000000000abcd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&url, "/jobs/0000000000000000000000000000abcd").json()["state"] != "FINISHED" {
        assert!(Instant::now() < deadline, "the plugin's job did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&url, "/jobs").json()["jobs"].as_array().unwrap().len(), 1);
    let mut totals = std::collections::BTreeMap::<u64, u64>::new();
    for l in std::fs::read_to_string(&out).unwrap().lines() {
        let (k, v) = l.split_once(',').unwrap();
        let e = totals.entry(k.parse().unwrap()).or_default();
        *e = (*e).max(v.parse().unwrap());
    }
    assert_eq!(totals.into_iter().collect::<Vec<_>>(), [(0, 1683), (1, 1617), (2, 1650)]);
    // The plugin's own argument errors and unknown entries are 400s.
    let r = post_json(&url, &format!("/jars/{id}/run"), &json!({"entryClass": "sums", "programArgsList": ["x"]}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("expects three arguments"));
    // With two jobs in the plugin, the run must name one.
    let r = post_json(&url, &format!("/jars/{id}/run"), &json!({"programArgsList": ["x"]}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("sums, restarts"), "{}", r.error());
    let r = post_json(&url, &format!("/jars/{id}/run"), &json!({"entryClass": "nope"}));
    assert_eq!(r.status, 400);

    // Refused uploads leave nothing behind.
    let r = upload(&url, "junk.so", b"this is not a shared library");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error().contains("not a loadable library"), "{}", r.error());
    let r = upload(&url, "notes.txt", &lib[..1000]);
    assert_eq!(r.status, 400);
    assert_eq!(upload(&url, "empty.so", b"").status, 400);
    let big = vec![0u8; lib.len() + (2 << 20)];
    assert_eq!(upload(&url, "big.so", &big).status, 413);
    assert_eq!(files_in(&uploads).len(), 1, "{:?}", files_in(&uploads));
    assert_eq!(request(&url, "POST", "/jars/upload", &[("Content-Type", "application/json")], b"{}").status, 400);

    // Unknown ids, traversal in ids, delete.
    for bad in ["nope.so", "..%2f..%2fetc%2fpasswd", &format!("..%2f{id}")] {
        assert_eq!(post_json(&url, &format!("/jars/{bad}/run"), &json!({})).status, 404, "{bad}");
        assert_eq!(request(&url, "DELETE", &format!("/jars/{bad}"), &[], b"").status, 404, "{bad}");
    }
    assert_eq!(request(&url, "DELETE", &format!("/jars/{id}"), &[], b"").status, 200);
    assert_eq!(get(&url, "/jars").json()["files"], json!([]));
    assert!(files_in(&uploads).is_empty());
    assert_eq!(post_json(&url, &format!("/jars/{id}/run"), &json!({})).status, 404);
    drop(mc);
}
