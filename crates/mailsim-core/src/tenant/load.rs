//! Tenant configuration text → [`super::Tenant`]. Reading the file is the caller's job.
