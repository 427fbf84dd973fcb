/// mimalloc keeps freed memory for reuse: ingest allocates and frees large buffers per
/// chunk and per batch, and the system allocator hands those back to the kernel each time
/// (measured: a third of ingest's CPU time went to page faults). Built without transparent
/// huge pages (`no_thp`): under the kernel's usual `defrag=madvise`, each huge page
/// mimalloc asks for can stall in compaction (measured, kefu against kefu: 9% less time
/// over the query library, 13–17% on the churn queries, ingest 3–7% faster).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kefu::cli::main()
}
