//! AWS region names: a schema rule of `spec.provider.aws.region` (and the STSSessionToken
//! generator's `region`), checked by admission ([`super::validate`]) and by the AWS provider
//! before it builds a client.

/// Whether `region` has the shape of an AWS region name (`us-east-1`, `us-gov-west-1`,
/// `eu-isoe-west-1`). A typo otherwise surfaces only as a DNS failure on the first call.
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "eu-isoe-west-1",
            "ap-southeast-5",
        ] {
            assert!(super::valid_region(ok), "{ok}");
        }
        for bad in [
            "moon",
            "us-east",
            "useast-1",
            "US-EAST-1",
            "us-east-1a",
            "",
            "us--1",
            "moon-base",
        ] {
            assert!(!super::valid_region(bad), "{bad}");
        }
    }
}
