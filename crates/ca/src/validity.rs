//! When a certificate or CRL is valid. Times are parameters: the `*_from`
//! constructors take `now`, and only the `*_now` conveniences read the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::CaError;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far before "now" a certificate starts being valid. A peer whose clock
/// runs a little behind the CA's would otherwise refuse a fresh certificate
/// as "not yet valid".
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// A certificate's notBefore and notAfter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl Validity {
    /// From [`BACKDATE`] before `now` until `days` days after `now`.
    ///
    /// `days` must be at least 1, and the end must fall before the year
    /// 10000 (the last date X.509's GeneralizedTime can express).
    pub fn days_from(now: SystemTime, days: u32) -> Result<Validity, CaError> {
        if days == 0 {
            return Err(CaError::Validity(
                "a certificate must be valid for at least 1 day, not 0".to_owned(),
            ));
        }
        let too_long = || {
            CaError::Validity(format!(
                "{days} days from now ends after the year 9999; ask for fewer days"
            ))
        };
        let not_after = DAY
            .checked_mul(days)
            .and_then(|span| now.checked_add(span))
            .ok_or_else(too_long)?;
        let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
        Ok(Validity {
            not_before: to_asn1_time(not_before)?,
            not_after: to_asn1_time(not_after).map_err(|_| too_long())?,
        })
    }

    /// [`Validity::days_from`] the system clock's now.
    pub fn days_from_now(days: u32) -> Result<Validity, CaError> {
        Validity::days_from(SystemTime::now(), days)
    }

    /// Valid from two days before `now` until one day before `now`: for
    /// tests that a peer refuses an expired certificate.
    pub fn expired_at(now: SystemTime) -> Result<Validity, CaError> {
        let before = |days: u32| {
            now.checked_sub(DAY * days)
                .ok_or_else(|| CaError::Validity("now is too close to 1970".to_owned()))
        };
        Validity::between(before(2)?, before(1)?)
    }

    /// [`Validity::expired_at`] the system clock's now.
    pub fn expired() -> Result<Validity, CaError> {
        Validity::expired_at(SystemTime::now())
    }

    /// Exactly from `not_before` to `not_after`, which must come after it.
    pub fn between(not_before: SystemTime, not_after: SystemTime) -> Result<Validity, CaError> {
        if not_after <= not_before {
            return Err(CaError::Validity(
                "notAfter must come after notBefore".to_owned(),
            ));
        }
        Ok(Validity {
            not_before: to_asn1_time(not_before)?,
            not_after: to_asn1_time(not_after)?,
        })
    }
}

/// Converts to the type rcgen takes, at whole seconds (certificates carry no
/// fractions), between 1970 and the end of 9999.
pub(crate) fn to_asn1_time(t: SystemTime) -> Result<OffsetDateTime, CaError> {
    let out_of_range = || {
        CaError::Validity(format!(
            "{t:?} is outside 1970 to 9999, the range certificates are issued for here"
        ))
    };
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| out_of_range())?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| out_of_range())?;
    let at = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| out_of_range())?;
    if at.year() > 9999 {
        return Err(out_of_range());
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_backdates_the_start_and_counts_whole_days() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let v = Validity::days_from(now, 30).expect("valid");
        assert_eq!(v.not_before.unix_timestamp(), 1_750_000_000 - 3600);
        assert_eq!(v.not_after.unix_timestamp(), 1_750_000_000 + 30 * 86_400);
    }

    #[test]
    fn refuses_zero_days_and_ends_past_9999() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        assert_eq!(
            Validity::days_from(now, 0).expect_err("0 days").to_string(),
            "invalid validity: a certificate must be valid for at least 1 day, not 0"
        );
        assert_eq!(
            Validity::days_from(now, u32::MAX)
                .expect_err("too long")
                .to_string(),
            "invalid validity: 4294967295 days from now ends after the year 9999; ask for fewer days"
        );
        assert!(Validity::days_from(now, 365 * 100).is_ok());
    }

    #[test]
    fn expired_ended_before_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let v = Validity::expired_at(now).expect("valid");
        assert!(v.not_after.unix_timestamp() < 1_750_000_000);
        assert!(v.not_before < v.not_after);
    }

    #[test]
    fn between_wants_an_order() {
        let now = SystemTime::now();
        assert!(Validity::between(now, now).is_err());
    }
}
