//! STUB (being written by another engineer): `mailsim explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {}
pub fn run(_args: &ExplainArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
