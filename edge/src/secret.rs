//! Shared secrets: made random, kept in a file only its owner can read.

use std::path::Path;

use base64::Engine;

/// Bytes of randomness in a generated token.
const TOKEN_BYTES: usize = 32;

/// A new random token: 32 bytes from the OS generator, base64url without padding
/// (43 characters, safe in headers, TOML and shell). Never one that starts with `-`:
/// pasted after `--token` it would read as an option to most command lines (one token
/// in 64 did, and `sluice check --token <it>` then failed with "bad arguments").
pub fn generate() -> String {
    loop {
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !token.starts_with('-') {
            return token;
        }
    }
}

/// The token kept in `path`, made (mode 0600) if the file does not exist yet: so a
/// restart reuses it and the agents configured with it keep working.
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = generate();
    durable_file::replace_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_random_and_kept_private_across_loads() {
        assert_ne!(generate(), generate());
        assert_eq!(generate().len(), 43);
        // One draw in 64 starts with '-': in 5,000 some would, were they not redrawn.
        assert!((0..5_000).all(|_| !generate().starts_with('-')));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("keys/porter.token");
        let t = load_or_create(&p).unwrap();
        assert_eq!(load_or_create(&p).unwrap(), t);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
