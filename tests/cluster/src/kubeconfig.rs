//! Kubeconfig files for the server: the admin's, or one for any bearer token.

use std::path::Path;

use base64::Engine;

/// A kubeconfig (YAML) for `server` with a bearer token (and the test CA for https servers).
pub fn render(server: &str, token: &str, user: &str, namespace: &str) -> String {
    let ca = if server.starts_with("https://") {
        format!(
            "\n    certificate-authority-data: {}",
            base64::engine::general_purpose::STANDARD.encode(crate::tls::CA_PEM)
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kentledge-test\n  cluster:\n    server: {server}{ca}\ncontexts:\n- name: kentledge-test\n  context:\n    cluster: kentledge-test\n    user: {user}\n    namespace: {namespace}\ncurrent-context: kentledge-test\nusers:\n- name: {user}\n  user:\n    token: {token}\npreferences: {{}}\n"
    )
}

/// Write a kubeconfig, creating parent directories, readable only by the owner.
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
