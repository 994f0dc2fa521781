//! What the server is, from its `GET /` answer: Elasticsearch (and which
//! version) or OpenSearch. osmem-server answers as OpenSearch
//! (`"distribution": "opensearch"`, `"number": "3.8.0"`). The templates and
//! the retention follow from that, not from a setting the user must know.

use serde_json::Value;

use super::template::Flavour;

/// The server, as `GET /` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub flavour: Flavour,
    /// `version.number`, e.g. `8.17.1`.
    pub number: String,
    pub major: u32,
    pub minor: u32,
}

impl Server {
    /// Reads the answer of `GET /`. A server without `version.distribution`
    /// is Elasticsearch (it has never sent one); OpenSearch says
    /// `opensearch`.
    pub fn from_root(body: &Value) -> Server {
        let version = &body["version"];
        let flavour = match version["distribution"].as_str() {
            Some("opensearch") => Flavour::OpenSearch,
            _ => Flavour::Elasticsearch,
        };
        let number = version["number"].as_str().unwrap_or("0.0.0").to_owned();
        let mut parts = number
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        Server {
            flavour,
            number,
            major,
            minor,
        }
    }

    fn elasticsearch_at_least(&self, major: u32, minor: u32) -> bool {
        self.flavour == Flavour::Elasticsearch && (self.major, self.minor) >= (major, minor)
    }

    /// Takes `ignore_missing_component_templates` (Elasticsearch 8.7).
    pub fn takes_missing_components(&self) -> bool {
        self.elasticsearch_at_least(8, 7)
    }

    /// Has data stream lifecycles, `template.lifecycle.data_retention`
    /// (Elasticsearch 8.11).
    pub fn has_lifecycle(&self) -> bool {
        self.elasticsearch_at_least(8, 11)
    }

    /// Why `retention` cannot be installed on this server, if it cannot.
    pub fn refuses_retention(&self) -> Option<String> {
        if self.has_lifecycle() {
            return None;
        }
        Some(match self.flavour {
            Flavour::OpenSearch => format!(
                "retention needs Elasticsearch's data stream lifecycle; this server is \
                 OpenSearch {} (manage retention there with an ISM policy, and remove retention)",
                self.number
            ),
            Flavour::Elasticsearch => format!(
                "retention needs a data stream lifecycle (Elasticsearch 8.11 or later); \
                 this server is {} (remove retention to keep the `logs` ILM policy)",
                self.number
            ),
        })
    }

    /// How the log names the server.
    pub fn describe(&self) -> String {
        match self.flavour {
            Flavour::Elasticsearch => format!("Elasticsearch {}", self.number),
            Flavour::OpenSearch => format!("OpenSearch {}", self.number),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_distribution_tells_opensearch_from_elasticsearch() {
        // Elasticsearch 8/9 send no distribution.
        let es = Server::from_root(&json!({
            "name": "node-1", "cluster_name": "docker-cluster",
            "version": { "number": "8.17.1", "build_flavor": "default", "build_type": "docker" },
            "tagline": "You Know, for Search"
        }));
        assert_eq!(es.flavour, Flavour::Elasticsearch);
        assert_eq!((es.major, es.minor), (8, 17));
        assert!(es.has_lifecycle() && es.takes_missing_components());
        assert!(es.refuses_retention().is_none());

        // What osmem-server answers.
        let os = Server::from_root(&json!({
            "version": { "distribution": "opensearch", "number": "3.8.0" },
            "tagline": "The OpenSearch Project: https://opensearch.org/"
        }));
        assert_eq!(os.flavour, Flavour::OpenSearch);
        assert!(!os.has_lifecycle() && !os.takes_missing_components());
        assert!(os.refuses_retention().unwrap().contains("OpenSearch 3.8.0"));

        let old = Server::from_root(&json!({ "version": { "number": "8.6.2" } }));
        assert!(!old.takes_missing_components());
        assert!(old.refuses_retention().unwrap().contains("8.11"));
        let nine = Server::from_root(&json!({ "version": { "number": "9.0.0-SNAPSHOT" } }));
        assert!(nine.has_lifecycle());
        assert_eq!(Server::from_root(&json!({})).major, 0);
    }
}
