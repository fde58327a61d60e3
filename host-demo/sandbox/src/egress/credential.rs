//! The key swap: the plugin holds a placeholder, and only the component's own API calls,
//! with exactly the headers it writes, go out with the real key in its place
//! ([`Credential::admit`], then [`swap_placeholder`]).

use super::origin::Origin;
use anyhow::{Context, Result, bail};
use wasmtime_wasi_http::WasiBody;

/// A secret the plugin never sees: the plugin's environment holds `placeholder`, and the host
/// puts `value` in its place in the `Authorization` header of the API calls it admits to
/// `origin` (see [`Credential::admit`]).
#[derive(Clone)]
pub struct Credential {
    /// Where the real value may go.
    pub origin: Origin,
    /// The path of the API's base URL, without a trailing `/` (usually empty): the admitted
    /// calls are under it.
    pub base_path: String,
    /// What the plugin sees.
    pub placeholder: String,
    /// The real secret.
    pub value: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("origin", &self.origin)
            .field("base_path", &self.base_path)
            .field("placeholder", &self.placeholder)
            .finish_non_exhaustive()
    }
}

/// Why a request to the API origin was refused. Says what was wrong, never what a header
/// held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The method and path are not one of the calls the component makes.
    NotAnApiCall,
    /// The URL has a query string (the component's calls have none).
    Query,
    /// `Authorization` is missing, repeated, or not exactly `Bearer <placeholder>`.
    Authorization,
    /// A header the component's calls never carry (`X-HTTP-Method-Override`, `Expect`, …),
    /// or a body header on a `GET`: anything a gateway might act on beyond the call itself.
    Header,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NotAnApiCall => {
                "not an API call the component makes (POST /v1/videos/generations, GET /v1/jobs/{id})"
            }
            Refusal::Query => "a query string on an API call",
            Refusal::Authorization => {
                "Authorization on an API call must be exactly `Bearer <placeholder>`, once"
            }
            Refusal::Header => "a header the component's API calls never carry",
        })
    }
}

impl Credential {
    /// A credential for the API at `base_url` (its origin and path), shown to plugins as
    /// `placeholder`.
    pub fn for_api(base_url: &str, placeholder: String, value: String) -> Result<Credential> {
        let origin = Origin::from_url(base_url)?;
        let parsed =
            url::Url::parse(base_url).with_context(|| format!("{base_url:?} is not a URL"))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            bail!("the API base URL {base_url:?} must have no query or fragment");
        }
        Ok(Credential {
            origin,
            base_path: parsed.path().trim_end_matches('/').to_string(),
            placeholder,
            value,
        })
    }

    /// Whether a request to the API origin may go out with the key. Only the component's
    /// own calls are admitted, so nothing the plugin sends can make the API (or anything
    /// behind its origin) reflect the key back: `TRACE`, an endpoint that echoes headers,
    /// an error that quotes the token, a placeholder inside some other scheme or value.
    pub fn admit(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Result<(), Refusal> {
        let path = uri
            .path()
            .strip_prefix(self.base_path.as_str())
            .ok_or(Refusal::NotAnApiCall)?;
        let api_call = match *method {
            http::Method::POST => path == "/v1/videos/generations",
            // Exactly the component's poll path: its own rule for job ids, one home.
            http::Method::GET => {
                happyhorse_core::wire::job_path(path.strip_prefix("/v1/jobs/").unwrap_or_default())
                    .is_ok_and(|expected| expected == path)
            }
            _ => false,
        };
        if !api_call {
            return Err(Refusal::NotAnApiCall);
        }
        if uri.query().is_some() {
            return Err(Refusal::Query);
        }
        // Exactly the headers the component writes (`guest/src/wasi_http.rs`), the body's
        // only on the submit, and the `Host` WASI-HTTP derives from the URI (checked against
        // it by the hook): a method override or an `Expect` could make a gateway turn an
        // admitted call into one that reflects the key.
        let body_headers = [http::header::CONTENT_TYPE, http::header::CONTENT_LENGTH];
        let allowed = |name: &http::HeaderName| {
            [
                http::header::AUTHORIZATION,
                http::header::ACCEPT,
                http::header::USER_AGENT,
                http::header::HOST,
            ]
            .contains(name)
                || (*method == http::Method::POST && body_headers.contains(name))
        };
        if !headers.keys().all(allowed) {
            return Err(Refusal::Header);
        }
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let expected = format!("Bearer {}", self.placeholder);
        match (values.next(), values.next()) {
            (Some(value), None) if value.as_bytes() == expected.as_bytes() => Ok(()),
            _ => Err(Refusal::Authorization),
        }
    }
}

/// Put the real key in place of the `Bearer <placeholder>` that [`Credential::admit`] found,
/// marked sensitive so no `Debug` of the headers (hyper's trace logs included) can print it.
pub(crate) fn swap_placeholder(request: &mut http::Request<WasiBody>, credential: &Credential) {
    if let Ok(mut value) = http::HeaderValue::from_str(&format!("Bearer {}", credential.value)) {
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn api(base: &str) -> Credential {
        Credential::for_api(base, "hh-placeholder-0f".into(), "sk-real".into()).unwrap()
    }

    fn bearer(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_components_own_calls_are_admitted() {
        let c = api("http://127.0.0.1:8080");
        let ok = bearer("Bearer hh-placeholder-0f");
        let admit = |method: &str, uri: &str, headers: &http::HeaderMap| {
            c.admit(&method.parse().unwrap(), &uri.parse().unwrap(), headers)
        };
        let base = "http://127.0.0.1:8080";
        assert_eq!(
            admit("POST", &format!("{base}/v1/videos/generations"), &ok),
            Ok(())
        );
        assert_eq!(
            admit("GET", &format!("{base}/v1/jobs/job_1.a:b-C"), &ok),
            Ok(())
        );
        let long_id = "x".repeat(256);
        assert_eq!(
            admit("GET", &format!("{base}/v1/jobs/{long_id}"), &ok),
            Ok(())
        );
        for (method, path) in [
            ("TRACE", "/v1/jobs/x"),
            ("GET", "/v1/echo"),
            ("POST", "/v1/jobs/x"),
            ("GET", "/v1/videos/generations"),
            ("PUT", "/v1/videos/generations"),
            ("GET", "/v1/account/usage"),
            ("GET", "/v1/jobs/"),
            ("GET", "/v1/jobs/.."),
            ("GET", "/v1/jobs/."),
            ("GET", "/v1/jobs/a/b"),
            ("GET", "/v1/jobs/a%2Fb"),
            ("GET", &format!("/v1/jobs/{long_id}x")),
            ("POST", "/v1/videos/generations/"),
            ("POST", "/V1/videos/generations"),
            ("GET", "/"),
        ] {
            assert_eq!(
                admit(method, &format!("{base}{path}"), &ok),
                Err(Refusal::NotAnApiCall),
                "{method} {path}"
            );
        }
        assert_eq!(
            admit("GET", &format!("{base}/v1/jobs/x?echo=1"), &ok),
            Err(Refusal::Query)
        );
        assert_eq!(
            admit("GET", &format!("{base}/v1/jobs/x?"), &ok),
            Err(Refusal::Query)
        );
    }

    #[test]
    fn only_the_headers_the_component_writes_go_with_the_key() {
        let c = api("http://127.0.0.1:8080");
        let poll: http::Uri = "http://127.0.0.1:8080/v1/jobs/x".parse().unwrap();
        let submit: http::Uri = "http://127.0.0.1:8080/v1/videos/generations"
            .parse()
            .unwrap();
        let with = |name: &'static str, value: &str| {
            let mut headers = bearer("Bearer hh-placeholder-0f");
            headers.insert(name, value.parse().unwrap());
            headers
        };
        for (name, value) in [("accept", "application/json"), ("user-agent", "x/1")] {
            assert_eq!(
                c.admit(&http::Method::GET, &poll, &with(name, value)),
                Ok(())
            );
        }
        for (name, value) in [
            ("content-type", "application/json"),
            ("content-length", "2"),
        ] {
            assert_eq!(
                c.admit(&http::Method::POST, &submit, &with(name, value)),
                Ok(())
            );
            assert_eq!(
                c.admit(&http::Method::GET, &poll, &with(name, value)),
                Err(Refusal::Header),
                "a body header on a poll"
            );
        }
        for (name, value) in [
            ("x-http-method-override", "TRACE"),
            ("x-method-override", "TRACE"),
            ("expect", "100-continue"),
            ("forwarded", "for=evil"),
            ("x-debug", "echo-headers"),
        ] {
            assert_eq!(
                c.admit(&http::Method::POST, &submit, &with(name, value)),
                Err(Refusal::Header),
                "{name}"
            );
        }
    }

    #[test]
    fn only_exactly_bearer_placeholder_carries_the_key() {
        let c = api("http://127.0.0.1:8080");
        let uri: http::Uri = "http://127.0.0.1:8080/v1/jobs/x".parse().unwrap();
        for value in [
            "Bearer hh-placeholder-0fx",
            "Bearer  hh-placeholder-0f",
            "bearer hh-placeholder-0f",
            "Basic hh-placeholder-0f",
            "Bearer xhh-placeholder-0f",
            "hh-placeholder-0f",
            "Bearer sk-something-else",
        ] {
            assert_eq!(
                c.admit(&http::Method::GET, &uri, &bearer(value)),
                Err(Refusal::Authorization),
                "{value}"
            );
        }
        let mut twice = bearer("Bearer hh-placeholder-0f");
        twice.append(
            http::header::AUTHORIZATION,
            "Bearer hh-placeholder-0f".parse().unwrap(),
        );
        assert_eq!(
            c.admit(&http::Method::GET, &uri, &twice),
            Err(Refusal::Authorization)
        );
        assert_eq!(
            c.admit(&http::Method::GET, &uri, &http::HeaderMap::new()),
            Err(Refusal::Authorization)
        );
    }

    #[test]
    fn a_base_path_prefixes_the_admitted_calls() {
        let c = api("https://gateway.example/happyhorse/");
        assert_eq!(c.base_path, "/happyhorse");
        let ok = bearer("Bearer hh-placeholder-0f");
        let post = http::Method::POST;
        let uri = |p: &str| -> http::Uri { format!("https://gateway.example{p}").parse().unwrap() };
        assert_eq!(
            c.admit(&post, &uri("/happyhorse/v1/videos/generations"), &ok),
            Ok(())
        );
        assert_eq!(
            c.admit(&post, &uri("/v1/videos/generations"), &ok),
            Err(Refusal::NotAnApiCall)
        );
        assert_eq!(
            c.admit(&post, &uri("/happyhorsex/v1/videos/generations"), &ok),
            Err(Refusal::NotAnApiCall)
        );
    }

    #[test]
    fn the_swap_replaces_the_whole_header() {
        let c = api("http://127.0.0.1:8080");
        let mut request = http::Request::new(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            "Bearer hh-placeholder-0f".parse().unwrap(),
        );
        swap_placeholder(&mut request, &c);
        let value = request.headers().get(http::header::AUTHORIZATION).unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer sk-real");
        assert!(value.is_sensitive());
    }
}
