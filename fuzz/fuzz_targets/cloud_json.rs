//! Every JSON answer roomd parses from the cloud after activation starts: SRP init and
//! invoke, service data, token grants, the U2C catalog, WDM registrations. Each must parse
//! or return a named error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::proto::{activation, u2c, wdm};

fuzz_target!(|data: &[u8]| {
    let _ = activation::parse_init(data);
    let _ = activation::parse_invoke(data);
    let _ = activation::parse_service_data(data);
    let _ = activation::parse_token_grant(data);
    if let Ok(catalog) = u2c::parse_catalog(data) {
        for candidates in catalog.services.values() {
            assert!(candidates.windows(2).all(|w| w[0].priority <= w[1].priority));
        }
    }
    if let Ok(registration) = wdm::parse_registration(data) {
        let _ = registration.features.all();
    }
});
