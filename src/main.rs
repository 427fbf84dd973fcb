/// mimalloc keeps freed memory for reuse: ingest allocates and frees large buffers per
/// chunk and per batch, and the system allocator hands those back to the kernel each time
/// (measured: a third of ingest's CPU time went to page faults).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kefu::cli::main()
}
