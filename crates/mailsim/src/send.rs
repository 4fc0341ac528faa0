//! STUB (being written by another engineer): `mailsim send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {}
pub async fn run(_args: SendArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
