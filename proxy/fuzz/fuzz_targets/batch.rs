//! Parses arbitrary bytes as a transactional batch body.

#![no_main]

use cosmoguard::classify::batch::MAX_BATCH_OPERATIONS;
use cosmoguard::classify::parse_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(operations) = parse_batch(data) {
        assert!(!operations.is_empty());
        assert!(operations.len() <= MAX_BATCH_OPERATIONS);
    }
});
