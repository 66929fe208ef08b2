//! schemathesis, the property-based API fuzzer driven by an OpenAPI document,
//! run against a live sandboxd.
//!
//! It reads `/openapi.json`, generates requests for every operation (valid
//! ones, boundary values, and — in its coverage phase — invalid ones), chains
//! them through the links it infers (start a sandbox, then get, pause and
//! delete it), and checks every answer against the document. Installed into its
//! own venv (`<target dir>/schemathesis-venv`, or `SANDBOXD_SCHEMATHESIS_VENV`)
//! from PyPI the first time, with the machine's `python3`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::venv::{Venv, find_python3};

/// The pinned release.
pub const REQUIREMENT: &str = "schemathesis==4.32.5";

pub const VENV: Venv = Venv {
    dir_name: "schemathesis-venv",
    dir_override: "SANDBOXD_SCHEMATHESIS_VENV",
    requirement: REQUIREMENT,
    marker: ".sandboxd-schemathesis-4.32.5",
    base_python: find_python3,
    help: "schemathesis needs python3 (3.9 or newer) with venv support and PyPI the first \
           time; or point SANDBOXD_SCHEMATHESIS_VENV at a venv that has schemathesis==4.32.5.",
};

/// What every answer is held to: no 5xx, and nothing the document does not say
/// (status, content type, headers, body).
pub const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                          response_headers_conformance,response_schema_conformance";

/// A run's settings.
pub struct Run {
    /// The base URL of the sandboxd under test.
    pub url: String,
    /// Headers sent with every request (`Name: value`).
    pub headers: Vec<String>,
    /// Generated cases per operation and phase.
    pub max_examples: u32,
    /// The seed: a run repeats with the same one.
    pub seed: u64,
    /// Operations (by path regex) left out.
    pub exclude_path_regex: Option<String>,
}

/// The `st` executable, installed first if need be.
pub fn st() -> PathBuf {
    VENV.bin().join("st")
}

impl Run {
    /// Run schemathesis to completion; its exit status and report.
    pub fn run(&self) -> Output {
        // It may leave files in its working directory: give it its own.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut cmd = Command::new(st());
        cmd.current_dir(dir.path());
        cmd.arg("run")
            .arg(format!("{}/openapi.json", self.url))
            .args(["--checks", CHECKS])
            .args(["--max-examples", &self.max_examples.to_string()])
            .args(["--seed", &self.seed.to_string()])
            .args(["--workers", "1"])
            .args([
                "--request-timeout",
                &Duration::from_secs(30).as_secs().to_string(),
            ])
            .args(["--generation-database", "none"])
            .args(["--no-color"]);
        for header in &self.headers {
            cmd.args(["-H", header]);
        }
        if let Some(regex) = &self.exclude_path_regex {
            cmd.args(["--exclude-path-regex", regex]);
        }
        cmd.env("SCHEMATHESIS_TELEMETRY", "false")
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run schemathesis: {e}"))
    }
}
