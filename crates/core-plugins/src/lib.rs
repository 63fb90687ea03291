//! Hero's first-party actions: `status`, `randomNumber`, `cacheTest`, `sleepTest`.
//!
//! They are ordinary plugins written against `plugin-api` and registered statically.

mod cache_test;
mod random_number;
mod sleep_test;
mod status;

pub use cache_test::CacheTest;
pub use random_number::RandomNumber;
pub use sleep_test::SleepTest;
pub use status::Status;

/// Keeps this crate linked into a binary that names no other item of it, so that its
/// `inventory` registrations are not dropped by the linker. Call it once from `main`.
#[inline(never)]
pub fn link() {
    std::hint::black_box(&REGISTERED);
}

static REGISTERED: [&str; 4] = ["status", "randomNumber", "cacheTest", "sleepTest"];
