//! `net` against real TLS servers and a real CONNECT proxy on 127.0.0.1, with a CA made here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::*;

/// A throwaway certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `names`; `expired` puts its validity in the past.
    fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("ca-{}.pem", rand::random::<u32>()));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}

/// An HTTPS server answering `200 ok` to everything; counts requests.
async fn https_server(cert_pem: &str, key_pem: &str) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"ok")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, served)
}

/// A CONNECT-only proxy: records each CONNECT target, then splices bytes both ways.
async fn connect_proxy() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                log.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_owned());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

async fn get(net: &Net, url: &str) -> Result<String, NetError> {
    let client = net.client::<Empty<Bytes>>();
    let response = client.get(url.parse().unwrap()).await.map_err(|e| {
        NetError::find(&e).cloned().unwrap_or(NetError::Tls {
            host: "?".into(),
            reason: e.to_string(),
        })
    })?;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn https_is_verified_against_tls_ca_file_and_failures_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("readyd unit CA");
    let other = Ca::new("someone else's CA");
    let ca_file = ca.pem_file(dir.path());
    let net = Net::new(Some(&ca_file), ProxySettings::direct()).unwrap();

    let (good_cert, good_key) = ca.leaf(&["127.0.0.1", "localhost"], false);
    let (good, served) = https_server(&good_cert, &good_key).await;
    assert_eq!(get(&net, &format!("https://{good}/x")).await.unwrap(), "ok");
    assert_eq!(
        get(&net, &format!("https://localhost:{}/x", good.port()))
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // Without the CA file the same server is an unknown CA: nothing is switched off.
    let err = get(&Net::system(), &format!("https://{good}/secret-path"))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::UnknownCa { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret-path"), "{err}");

    let (cert, key) = other.leaf(&["127.0.0.1"], false);
    let (foreign, _) = https_server(&cert, &key).await;
    let err = get(&net, &format!("https://{foreign}/")).await.unwrap_err();
    assert!(matches!(err, NetError::UnknownCa { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown CA"), "{err}");

    let (cert, key) = ca.leaf(&["wrong.example"], false);
    let (misnamed, _) = https_server(&cert, &key).await;
    let err = get(&net, &format!("https://{misnamed}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::NameMismatch { .. }), "{err:?}");

    let (cert, key) = ca.leaf(&["127.0.0.1"], true);
    let (expired, _) = https_server(&cert, &key).await;
    let err = get(&net, &format!("https://{expired}/")).await.unwrap_err();
    assert!(matches!(err, NetError::Expired { .. }), "{err:?}");
    assert_eq!(err.kind(), "expired");
}

#[tokio::test]
async fn refused_connections_and_bad_ca_files_are_named() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = get(
        &Net::system(),
        &format!("http://127.0.0.1:{port}/token/abc"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        NetError::Refused {
            target: format!("127.0.0.1:{port}")
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, "not a certificate").unwrap();
    let err = Net::new(Some(&file), ProxySettings::direct()).unwrap_err();
    assert!(matches!(err, NetError::CaFile { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    let err = Net::new(
        Some(&dir.path().join("missing.pem")),
        ProxySettings::direct(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[tokio::test]
async fn https_goes_through_the_connect_proxy_unless_no_proxy_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("proxy test CA");
    let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"], false);
    let (server, served) = https_server(&cert, &key).await;
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxySettings {
        https: Some(ProxyUrl::parse(&format!("http://user:pw@{proxy_addr}")).unwrap()),
        http: None,
        no_proxy: NoProxy::parse("localhost"),
    };
    let net = Net::new(Some(&ca.pem_file(dir.path())), proxy).unwrap();
    assert_eq!(
        get(&net, &format!("https://{server}/a")).await.unwrap(),
        "ok"
    );
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![format!("CONNECT {server} HTTP/1.1")],
        "one tunnel, to the final target"
    );
    // NO_PROXY: direct, the proxy sees nothing more.
    assert_eq!(
        get(&net, &format!("https://localhost:{}/b", server.port()))
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // A proxy that refuses the tunnel is a proxy error, not the target's.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = get(&net, &format!("https://{closed}/")).await.unwrap_err();
    assert!(matches!(err, NetError::Proxy { .. }), "{err:?}");
    assert!(err.to_string().contains("502"), "{err}");
    assert!(!err.to_string().contains("pw"), "{err}");
}

#[tokio::test]
async fn plain_http_goes_to_the_http_proxy_in_absolute_form() {
    // A "proxy" that records the request line and answers itself.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let net = Net::new(
        None,
        ProxySettings {
            https: None,
            http: Some(ProxyUrl::parse(&format!("http://{addr}")).unwrap()),
            no_proxy: NoProxy::default(),
        },
    )
    .unwrap();
    assert_eq!(
        get(&net, "http://target.invalid:8123/p?q=1").await.unwrap(),
        "ok"
    );
    let head = task.await.unwrap();
    assert!(
        head.starts_with("GET http://target.invalid:8123/p?q=1 HTTP/1.1\r\n"),
        "{head}"
    );
}

#[test]
fn redact_keeps_scheme_and_host_only() {
    for (url, shown) in [
        (
            "https://hooks.slack.com/services/T0/B0/XyZ",
            "https://hooks.slack.com",
        ),
        (
            "https://Example.webhook.office.com:8443/webhookb2/abc?x=1",
            "https://example.webhook.office.com:8443",
        ),
        ("http://user:pass@127.0.0.1:9/hook", "http://127.0.0.1:9"),
        ("http://[::1]:80/a", "http://[::1]:80"),
        ("https://host.test?token=1", "https://host.test"),
        ("https://host.test#frag", "https://host.test"),
        ("not a url", "<invalid url>"),
    ] {
        assert_eq!(redact(url), shown, "{url}");
    }
    let text = "channel `sre`: https://hooks.slack.com/services/T0/B0/XyZ is https. Also (http://a.test/p/q), \"http://b.test:1/x\"";
    let red = redact_text(text);
    assert_eq!(
        red,
        "channel `sre`: https://hooks.slack.com is https. Also (http://a.test), \"http://b.test:1\""
    );
    assert!(matches!(redact_text("nothing here"), Cow::Borrowed(_)));
    assert_eq!(
        redact_text("HTTPS://H.test/secret end"),
        "https://h.test end"
    );
}
