//! `mock-cluster`: the admin command and, under other names, the fake scheduler commands.

fn main() {
    std::process::exit(mock_cluster::cli::main());
}
