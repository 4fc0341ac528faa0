//! STUB (being written by another engineer): `mailsim bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
