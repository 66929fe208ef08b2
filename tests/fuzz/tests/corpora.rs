//! Every committed fuzz input, replayed: each file of `fuzz/corpus/<target>/`
//! through its target's checks. A seed, or an input a fuzzer found and someone
//! committed to keep a fix fixed, fails here like it failed there.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_input_passes_its_target() {
    let mut replayed = 0;
    for (target, run) in sandboxd_fuzz_targets::TARGETS {
        let dir = corpus(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "{target} has no committed inputs in {}",
            dir.display()
        );
        for input in inputs {
            let data = std::fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
            // A failing check panics; name the input in the test's output.
            println!("{target}: {}", input.display());
            run(&data);
            replayed += 1;
        }
    }
    assert!(replayed >= 20, "only {replayed} inputs were replayed");
}
