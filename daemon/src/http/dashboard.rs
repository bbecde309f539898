//! The dashboard's files, embedded in the binary: `GET /` (the page) and `GET /assets/{file}`.
//!
//! The dashboard lives in `daemon/dashboard/` as plain static files (HTML, ES modules, CSS, an
//! SVG icon; no build step) and is compiled into the binary with `include_bytes!`, so the daemon
//! serves it with nothing on disk and nothing fetched from elsewhere. It reads the public `/v1`
//! API with the caller's token, under the same permissions as any client; it never calls the
//! engine. The contract with the rest of the HTTP layer is only [`page`] and [`asset`].

use bytes::Bytes;

use super::handlers::Reply;

/// One file under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../dashboard/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of `daemon/dashboard/` but the page itself (a unit test keeps the list complete).
static ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("actions.js", JS),
    asset!("api.js", JS),
    asset!("approvals.js", JS),
    asset!("charts.js", JS),
    asset!("dom.js", JS),
    asset!("entity.js", JS),
    asset!("initiatives.js", JS),
    asset!("lists.js", JS),
    asset!("overview.js", JS),
    asset!("status.js", JS),
    asset!("team.js", JS),
    asset!("tier1.js", JS),
    asset!("favicon.svg", SVG),
];

const INDEX_HTML: &[u8] = include_bytes!("../../dashboard/index.html");

/// Scripts, styles, images and API calls only from this origin; no inline code, no plugins, no
/// framing. The dashboard sets no inline style attribute, so `style-src 'self'` holds.
const SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The dashboard page.
pub fn page() -> Reply {
    let mut reply = Reply::media("text/html; charset=utf-8", Bytes::from_static(INDEX_HTML));
    reply
        .headers
        .push(("content-security-policy", SECURITY_POLICY));
    reply.headers.push(("x-content-type-options", "nosniff"));
    reply.headers.push(("referrer-policy", "no-referrer"));
    // The page is tiny and names its assets without a version: always revalidate.
    reply.headers.push(("cache-control", "no-cache"));
    reply
}

/// One of the dashboard's static files, by name (no paths: `/assets/{file}` is one segment).
pub fn asset(file: &str) -> Option<Reply> {
    let found = ASSETS.iter().find(|a| a.name == file)?;
    let mut reply = Reply::media(found.content_type, Bytes::from_static(found.body));
    reply.headers.push(("x-content-type-options", "nosniff"));
    reply.headers.push(("cache-control", "no-cache"));
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_folder_is_embedded_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "index.html")
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        listed.sort();
        assert_eq!(
            listed, on_disk,
            "ASSETS must list every file of daemon/dashboard/"
        );
        for a in ASSETS {
            let expected = match a.name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => JS,
                Some("css") => CSS,
                Some("svg") => SVG,
                _ => panic!("{}: add its media type", a.name),
            };
            assert_eq!(a.content_type, expected, "{}", a.name);
        }
    }

    #[test]
    fn every_referenced_asset_is_served() {
        let page = std::str::from_utf8(&page().body).unwrap().to_owned();
        let mut referenced = 0;
        for part in page.split("\"assets/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(asset(name).is_some(), "{name} is referenced but not served");
            referenced += 1;
        }
        assert_eq!(referenced, 3, "icon, stylesheet and script");
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for import in text.split("from './").skip(1) {
                let name = import.split('\'').next().unwrap();
                assert!(
                    asset(name).is_some(),
                    "{} imports {name}, not served",
                    a.name
                );
            }
        }
    }

    #[test]
    fn unknown_names_are_not_served() {
        assert!(asset("../secret").is_none());
        assert!(asset("").is_none());
        assert!(asset("index.html").is_none());
        assert!(asset("app.js").is_some());
    }

    #[test]
    fn the_page_carries_its_security_policy() {
        let page = page();
        let policy = page
            .headers
            .iter()
            .find(|(k, _)| *k == "content-security-policy")
            .map(|(_, v)| *v)
            .unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"));
    }
}
