//! A retention policy as data: the numbers of each rule, and the period rules in borg's order.
//! What they decide is [`crate::plan::retention`]; engines turn a policy into prune flags.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::model::units::HumanDuration;

/// A retention policy as numbers (0 = rule not set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep every ready member.
    pub keep_all: bool,
    /// Newest N (per-second periods).
    pub last: u32,
    /// Hourly periods.
    pub hourly: u32,
    /// Daily periods.
    pub daily: u32,
    /// ISO-week periods.
    pub weekly: u32,
    /// Monthly periods.
    pub monthly: u32,
    /// Yearly periods.
    pub yearly: u32,
    /// Keep everything younger than this.
    pub within: Option<HumanDuration>,
}

/// The period rules, in borg's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Newest N (per-second periods).
    Last,
    /// Hours.
    Hourly,
    /// Days.
    Daily,
    /// ISO weeks.
    Weekly,
    /// Months.
    Monthly,
    /// Years.
    Yearly,
}

impl Rule {
    /// All rules in evaluation order.
    pub const ALL: [Rule; 6] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
        Rule::Yearly,
    ];

    /// The rule's name as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    pub(crate) fn count(self, p: &Policy) -> u32 {
        match self {
            Rule::Last => p.last,
            Rule::Hourly => p.hourly,
            Rule::Daily => p.daily,
            Rule::Weekly => p.weekly,
            Rule::Monthly => p.monthly,
            Rule::Yearly => p.yearly,
        }
    }

    /// The period a time falls in, in `tz`; also usable as a label value
    /// (`2026-11-21T14`, `2026-11-21`, `2026-W47`, `2026-11`, `2026`).
    pub fn period(self, t: Timestamp, tz: &TimeZone) -> String {
        let z = t.to_zoned(tz.clone());
        match self {
            Rule::Last => z.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            Rule::Hourly => z.strftime("%Y-%m-%dT%H").to_string(),
            Rule::Daily => z.strftime("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let w = z.date().iso_week_date();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => z.strftime("%Y-%m").to_string(),
            Rule::Yearly => z.strftime("%Y").to_string(),
        }
    }
}
