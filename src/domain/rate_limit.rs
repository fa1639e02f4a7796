//! Request rate limits: a token bucket (GCRA, from `governor`) per project,
//! so one project can't exhaust the service for the others, and one per
//! client address for requests that fail authentication, so keys can't be
//! guessed at line rate. Buckets are local to each replica; the configured
//! rate is divided by the number of replicas.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Domain, Error, ErrorCode, Project, Result};

/// A rate: requests per second, with a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

/// How the limits are set.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitConfig {
    /// A project's limit unless it has its own (all replicas together).
    pub project_default: RateLimit,
    /// The limit per client address on requests that fail authentication.
    pub anonymous: RateLimit,
    /// How many replicas share the limits.
    pub replicas: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            project_default: RateLimit {
                per_second: 1_000,
                burst: 2_000,
            },
            anonymous: RateLimit {
                per_second: 10,
                burst: 20,
            },
            replicas: 1,
        }
    }
}

/// A refused request: when to retry, and the policy (for the IETF
/// `RateLimit-Policy` / `RateLimit` headers).
#[derive(Clone, Copy, Debug)]
pub struct Throttled {
    /// The policy's name in the headers: `project` or `anonymous`.
    pub policy: &'static str,
    /// The limit in force on this replica.
    pub limit: RateLimit,
    /// Time until a request would be admitted.
    pub retry_after: Duration,
}

impl Throttled {
    /// Seconds to wait, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// The domain error for this refusal.
    pub fn error(&self) -> Error {
        let whose = match self.policy {
            "project" => "this project's",
            _ => "this address's unauthenticated",
        };
        Error::new(
            ErrorCode::RateLimited,
            format!(
                "{whose} request rate is over {} per second; retry after {} s",
                self.limit.per_second,
                self.retry_after_secs()
            ),
        )
        .retry_after(self.retry_after_secs())
    }
}

fn quota(limit: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(limit.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

/// The buckets of one replica.
pub struct Limiters {
    config: RateLimitConfig,
    projects: RwLock<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limiters {
    /// Buckets for `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        let anonymous = RateLimiter::keyed(quota(config.anonymous));
        Limiters {
            config,
            projects: RwLock::default(),
            anonymous,
        }
    }

    /// This replica's share of a limit.
    fn share(&self, limit: RateLimit) -> RateLimit {
        let n = self.config.replicas.max(1);
        RateLimit {
            per_second: limit.per_second.div_ceil(n),
            burst: limit.burst.div_ceil(n),
        }
    }

    fn project_bucket(&self, project: &Project) -> (RateLimit, Arc<DefaultDirectRateLimiter>) {
        let limit = self.share(project.rate_limit.unwrap_or(self.config.project_default));
        if let Some((l, bucket)) = self
            .projects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&project.id)
            && *l == limit
        {
            return (limit, bucket.clone());
        }
        // New, or its limit changed: a fresh bucket at the new rate.
        let bucket = Arc::new(RateLimiter::direct(quota(limit)));
        self.projects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.id.clone(), (limit, bucket.clone()));
        (limit, bucket)
    }

    /// Admits one request of `project`, or says when to retry.
    pub fn admit_project(&self, project: &Project) -> Result<(), Throttled> {
        let (limit, bucket) = self.project_bucket(project);
        bucket.check().map_err(|not_until| Throttled {
            policy: "project",
            limit,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    /// Admits one unauthenticated request from `addr`, or says when to retry.
    pub fn admit_anonymous(&self, addr: IpAddr) -> Result<(), Throttled> {
        let limit = self.share(self.config.anonymous);
        self.anonymous
            .check_key(&addr)
            .map_err(|not_until| Throttled {
                policy: "anonymous",
                limit,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Forgets idle addresses, so the per-address state stays bounded.
    pub fn shrink(&self) {
        self.anonymous.retain_recent();
        self.anonymous.shrink_to_fit();
    }
}

impl Domain {
    /// The rate limiters.
    pub fn rate_limits(&self) -> &Limiters {
        &self.limiters
    }

    /// Sets (or clears, with `None`) a project's own rate limit.
    pub async fn set_rate_limit(&self, project_name: &str, limit: Option<RateLimit>) -> Result<()> {
        if let Some(l) = limit
            && (l.per_second == 0 || l.burst == 0)
        {
            return Err(Error::invalid("rate limit and burst must be at least 1"));
        }
        let found = self
            .store
            .set_project_rate_limit(
                project_name,
                limit.map(|l| (i64::from(l.per_second), i64::from(l.burst))),
            )
            .await?;
        if !found {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("no project {project_name:?}"),
            ));
        }
        self.api_keys.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(limit: Option<RateLimit>) -> Project {
        Project {
            id: "prj_1".into(),
            name: "p".into(),
            rate_limit: limit,
            key_id: None,
            request_id: None,
        }
    }

    #[test]
    fn a_project_gets_its_burst_then_waits() {
        let l = Limiters::new(RateLimitConfig {
            project_default: RateLimit {
                per_second: 2,
                burst: 3,
            },
            ..Default::default()
        });
        let p = project(None);
        for _ in 0..3 {
            assert!(l.admit_project(&p).is_ok());
        }
        let t = l.admit_project(&p).unwrap_err();
        assert_eq!(t.retry_after_secs(), 1);
        assert_eq!(t.error().code, ErrorCode::RateLimited);
        // Its own, higher limit replaces the bucket.
        let own = project(Some(RateLimit {
            per_second: 100,
            burst: 100,
        }));
        assert!(l.admit_project(&own).is_ok());
    }

    #[test]
    fn replicas_share_the_rate() {
        let l = Limiters::new(RateLimitConfig {
            project_default: RateLimit {
                per_second: 10,
                burst: 4,
            },
            replicas: 2,
            ..Default::default()
        });
        let p = project(None);
        assert!(l.admit_project(&p).is_ok());
        assert!(l.admit_project(&p).is_ok());
        assert!(l.admit_project(&p).is_err(), "half the burst per replica");
    }
}
