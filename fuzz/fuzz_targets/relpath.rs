//! Any string either is refused by `RelPath::parse` or yields a path that, joined under a root,
//! cannot leave it.
#![no_main]

use std::path::{Component, Path};

use api::files::RelPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = RelPath::parse(raw) else {
        return;
    };
    let text = path.as_str();
    assert!(!text.is_empty() && !text.starts_with('/'));
    assert!(!text.contains('\\') && !text.chars().any(char::is_control));
    let joined = Path::new("/root").join(text);
    assert!(joined.starts_with("/root"));
    for component in joined.components().skip(2) {
        assert!(
            matches!(component, Component::Normal(_)),
            "{raw:?} gave {component:?}"
        );
    }
    // The canonical form is a fixed point.
    assert_eq!(RelPath::parse(text).as_ref(), Ok(&path));
});
