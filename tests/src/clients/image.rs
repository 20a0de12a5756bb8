//! The test image. No registry is reachable here, so it is made locally:
//! a busybox-static root filesystem as a docker-archive tarball (`docker
//! save`'s format), which `docker load`, `podman load` and `ctr image
//! import` all take.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::bundle::Bundle;

/// The name of the test image in every client.
pub const IMAGE_REFERENCE: &str = "localhost/husk-busybox:latest";

/// What the image's own /etc/hostname holds. docker and podman mount a
/// file of theirs over it; containerd does not, so a process exec'd
/// through ctr reads this.
pub const IMAGE_HOSTNAME: &str = "husk-image";

/// sha256 of a file, as lowercase hex (`sha256sum`, coreutils).
fn sha256_of(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum (coreutils)");
    assert!(output.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

/// `tar --create` of `directory`'s contents into `archive`, with
/// numeric root ownership and fixed times and order, so that the same
/// tree always gives the same digest.
fn tar_directory(directory: &Path, archive: &Path) {
    let status = Command::new("tar")
        .args(["--create", "--file"])
        .arg(archive)
        .arg("--directory")
        .arg(directory)
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--mtime=@0",
            ".",
        ])
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of {} failed", directory.display());
}

/// Builds the test image — a busybox-static root filesystem with
/// /etc/passwd, /etc/group and /etc/hostname — as a docker-archive
/// tarball in `directory` and returns its path. The format is `docker
/// save`'s: `manifest.json` naming the image config (`<sha256>.json`,
/// image-spec config fields: architecture, os, config, rootfs.diff_ids)
/// and the one layer (`<sha256>/layer.tar`, its digest being the diff ID
/// since it is uncompressed).
pub fn build_image_archive(directory: &Path) -> PathBuf {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test image is built for amd64 only"
    );
    let bundle = Bundle::busybox("client-image");
    fs::write(
        bundle.rootfs().join("etc/hostname"),
        format!("{IMAGE_HOSTNAME}\n"),
    )
    .expect("write the image's /etc/hostname");

    let image_dir = directory.join("image");
    fs::create_dir_all(&image_dir).expect("create the image directory");
    let layer = directory.join("layer.tar");
    tar_directory(&bundle.rootfs(), &layer);
    let layer_digest = sha256_of(&layer);
    fs::create_dir_all(image_dir.join(&layer_digest)).expect("create the layer directory");
    fs::rename(&layer, image_dir.join(&layer_digest).join("layer.tar"))
        .expect("move the layer into the image");

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "husk-tests: busybox-static root filesystem"}]
    });
    let config_path = directory.join("config.json");
    fs::write(&config_path, config.to_string()).expect("write the image config");
    let config_digest = sha256_of(&config_path);
    fs::rename(
        &config_path,
        image_dir.join(format!("{config_digest}.json")),
    )
    .expect("move the image config into the image");

    let manifest = json!([{
        "Config": format!("{config_digest}.json"),
        "RepoTags": [IMAGE_REFERENCE],
        "Layers": [format!("{layer_digest}/layer.tar")]
    }]);
    fs::write(image_dir.join("manifest.json"), manifest.to_string())
        .expect("write the image manifest");

    let archive = directory.join("husk-busybox.tar");
    tar_directory(&image_dir, &archive);
    fs::remove_dir_all(&image_dir).expect("remove the image directory");
    archive
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::Scratch;

    /// docker, podman and containerd check every digest an archive names;
    /// a wrong one fails the load.
    #[test]
    fn the_archive_names_its_files_by_their_digests() {
        let scratch = Scratch::new("image-archive");
        let archive = build_image_archive(&scratch.path);
        let unpacked = scratch.file("unpacked");
        fs::create_dir(&unpacked).unwrap();
        let status = Command::new("tar")
            .arg("--extract")
            .arg("--file")
            .arg(&archive)
            .arg("--directory")
            .arg(&unpacked)
            .status()
            .unwrap();
        assert!(status.success());

        let manifest: Value =
            serde_json::from_slice(&fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
        let entry = &manifest[0];
        assert_eq!(entry["RepoTags"][0], IMAGE_REFERENCE);
        let config_name = entry["Config"].as_str().unwrap();
        assert_eq!(
            format!("{}.json", sha256_of(&unpacked.join(config_name))),
            config_name
        );
        let layer_name = entry["Layers"][0].as_str().unwrap();
        let layer_digest = sha256_of(&unpacked.join(layer_name));
        assert_eq!(layer_name, format!("{layer_digest}/layer.tar"));
        let config: Value =
            serde_json::from_slice(&fs::read(unpacked.join(config_name)).unwrap()).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{layer_digest}")
        );

        let listing = Command::new("tar")
            .arg("--list")
            .arg("--file")
            .arg(unpacked.join(layer_name))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        for path in [
            "./bin/busybox",
            "./bin/sh",
            "./etc/passwd",
            "./etc/hostname",
        ] {
            assert!(listing.lines().any(|line| line == path), "{path} missing");
        }
    }
}
