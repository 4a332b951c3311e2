//! The browser canvas (`static/`), embedded in the binary so `canopy` serves it from any
//! directory. The files are a compile-time list; a unit test checks it against the directory,
//! so a module added to `static/js/` without an entry here fails the build's tests instead of
//! 404ing in the browser.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::error::AppError;

/// One embedded file of `static/`.
pub struct StaticFile {
    /// The URL path it is served at (`/js/app.js`); `index.html` is served at `/`.
    pub url: &'static str,
    /// Its path under `static/`.
    pub file: &'static str,
    /// Its contents.
    pub body: &'static str,
}

macro_rules! static_files {
    ($($file:literal),* $(,)?) => {
        /// Every file of `static/` the server serves (not served: the page's unit tests in
        /// `static/tests/`, and `static/package.json`, which only tells Node that the scripts
        /// are ES modules).
        pub const FILES: &[StaticFile] = &[$(StaticFile {
            url: if const_str_eq($file, "index.html") { "/" } else { concat!("/", $file) },
            file: $file,
            body: include_str!(concat!("../../static/", $file)),
        }),*];

        /// The URL paths of [`FILES`], in the same order.
        pub const URLS: &[&str] = &[$(
            if const_str_eq($file, "index.html") { "/" } else { concat!("/", $file) }
        ),*];
    };
}

static_files!(
    "index.html",
    "app.css",
    "js/api.js",
    "js/app.js",
    "js/approvals.js",
    "js/arrange.js",
    "js/canvas.js",
    "js/chat.js",
    "js/conflict.js",
    "js/drag.js",
    "js/find.js",
    "js/inbox.js",
    "js/messages.js",
    "js/model.js",
    "js/panel.js",
    "js/people.js",
    "js/perf.js",
    "js/presence.js",
    "js/preview.js",
    "js/resume.js",
    "js/search.js",
    "js/state.js",
    "js/stream.js",
    "js/toast.js",
    "js/traffic.js",
    "js/util.js",
);

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The `Content-Type` for a file name, by its extension. ES modules must be served as
/// JavaScript (the HTML standard refuses to run a module script of another MIME type).
pub fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Serves the embedded file registered at the request's path; 404 `{"error":"not found"}` for
/// any other path (`configure` routes only listed paths here). No caching headers, as before
/// the split into modules: a new binary's page is picked up on the next load.
pub async fn serve(req: HttpRequest) -> Result<HttpResponse, AppError> {
    let file = FILES
        .iter()
        .find(|f| f.url == req.path())
        .ok_or_else(|| AppError::NotFound("not found".into()))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type(file.file))
        // The page acts with whoever opened it (in open mode, as the admin): another site must
        // not frame it and steer clicks on delete or pause (clickjacking), and a file is only
        // ever what its type says.
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(file.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn files_under(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                // The Node unit tests are for CI, not for browsers.
                if relative != "tests" {
                    files_under(root, &path, out);
                }
            } else if relative != "package.json" {
                // package.json only tells Node the scripts are ES modules.
                out.insert(relative);
            }
        }
    }

    #[test]
    fn the_list_matches_the_static_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk = BTreeSet::new();
        files_under(&root, &root, &mut on_disk);
        let listed: BTreeSet<String> = FILES.iter().map(|f| f.file.to_string()).collect();
        assert_eq!(
            listed, on_disk,
            "static_files! must list exactly the files of static/ (tests/ and package.json excepted)"
        );
        assert_eq!(listed.len(), FILES.len(), "a file is listed twice");
    }

    #[test]
    fn every_file_has_a_known_type_and_index_is_the_root() {
        for f in FILES {
            assert_ne!(
                content_type(f.file),
                "application/octet-stream",
                "{}",
                f.file
            );
        }
        let index = FILES.iter().find(|f| f.file == "index.html").unwrap();
        assert_eq!(index.url, "/");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
    }

    /// Every `import … from './x.js'` in a module names a listed module.
    #[test]
    fn module_imports_resolve_to_listed_files() {
        for f in FILES.iter().filter(|f| f.file.starts_with("js/")) {
            for piece in f.body.split("from './").skip(1) {
                let target = piece.split('\'').next().unwrap();
                let wanted = format!("js/{target}");
                assert!(
                    FILES.iter().any(|g| g.file == wanted),
                    "{} imports {wanted}, which is not served",
                    f.file
                );
            }
        }
    }
}
