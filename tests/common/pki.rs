//! Certificates for the TLS tests, made with the openssl command line in a
//! temporary directory: `NAME.pem` (certificate) and `NAME.key` (key).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The extensions of a server certificate for localhost / 127.0.0.1.
pub const SERVER: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";

/// A temporary directory of CAs and the certificates they signed.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// An empty directory.
    pub fn empty() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A CA `ca` and a `server` certificate for localhost / 127.0.0.1 it signed.
    pub fn server() -> Pki {
        let pki = Pki::empty();
        pki.ca("ca");
        pki.leaf("ca", "server", "localhost", SERVER);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A self-signed CA certificate `name.pem` with its key `name.key`.
    pub fn ca(&self, name: &str) {
        self.new_key(
            name,
            &[
                "-x509",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// A certificate `name.pem` (key `name.key`) for common name `cn`, signed by
    /// the CA `ca`, with the extension lines `ext` (subjectAltName, usage).
    pub fn leaf(&self, ca: &str, name: &str, cn: &str, ext: &str) {
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"),
        )
        .unwrap();
        self.new_key(
            name,
            &[
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            "2",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    /// `openssl req` with a new P-256 key written to `name.key`, then `args`
    /// (what to make: a self-signed certificate or a signing request).
    fn new_key(&self, name: &str, args: &[&str]) {
        let key = format!("{name}.key");
        let mut all = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
        ];
        all.extend_from_slice(args);
        self.openssl(&all);
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect(
                "the openssl command is needed for the TLS tests: `apt-get install -y openssl`",
            );
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
