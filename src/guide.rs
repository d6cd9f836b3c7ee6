// The guide: chapters on what the crate guarantees and how to run it, in
// the pattern of clap's `_tutorial`. Documentation only, compiled only for
// rustdoc (`#[cfg(doc)]` in lib.rs), so it adds nothing to a build. The
// text lives in `docs/guide/*.md` (and the fault table in `docs/faults.md`,
// which `tests/fault_table.rs` checks against the suite); every chapter
// gets `docs/guide/links.md` appended, so its `` [`Lock::acquire`] `` and
// the like are intra-doc links that `cargo doc -D warnings` checks. Their
// code blocks are doctests (`cargo test --doc`).
#![doc = include_str!("../docs/guide/README.md")]
#![doc = include_str!("../docs/guide/links.md")]

/// One chapter module per markdown file, with the shared link targets.
macro_rules! chapters {
    ($($name:ident: $file:literal),* $(,)?) => {
        $(
            #[doc = include_str!($file)]
            #[doc = include_str!("../docs/guide/links.md")]
            pub mod $name {}
        )*
    };
}

chapters! {
    guarantees: "../docs/guide/guarantees.md",
    connecting: "../docs/guide/connecting.md",
    renewal: "../docs/guide/renewal.md",
    waiting: "../docs/guide/waiting.md",
    cancellation: "../docs/guide/cancellation.md",
    reentrant: "../docs/guide/reentrant.md",
    semaphore: "../docs/guide/semaphore.md",
    rwlock: "../docs/guide/rwlock.md",
    fair: "../docs/guide/fair.md",
    fencing: "../docs/guide/fencing.md",
    redlock: "../docs/guide/redlock.md",
    cluster: "../docs/guide/cluster.md",
    server: "../docs/guide/server.md",
    acl: "../docs/guide/acl.md",
    faults: "../docs/faults.md",
    observability: "../docs/guide/observability.md",
    metrics: "../docs/guide/metrics.md",
    blocking: "../docs/guide/blocking.md",
    test_server: "../docs/guide/test_server.md",
    tls: "../docs/guide/tls.md",
    interop: "../docs/guide/interop.md",
    lockrun: "../docs/guide/lockrun.md",
}
