//! Tenant configuration text → [`super::Tenant`]. Reading the file is the caller's job.

/// STUB until the loader lands.
pub fn load(_text: &str, path: &str) -> Result<super::Tenant, String> {
    Err(format!("{path}: tenant files are not supported yet"))
}
