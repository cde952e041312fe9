//! Deterministic, realistic demo PFA records for dev mode. Pure: no I/O, no `rand` (this
//! module is compiled for wasm too). A tiny splitmix64 generator seeded from the org id makes
//! the same call always return the same records, and fewer records are a prefix of more.

use super::pfa::{Dor, PfaRecord, Source};
use chrono::{Duration, NaiveDate};

/// How many demo records an org gets in dev mode.
pub fn demo_count(org_id: &str) -> usize {
    match org_id {
        "org-rio" => 2000,
        "org-portarthur" => 500,
        _ => 0,
    }
}

/// One equipment category: tag prefix, weight in the mix, forecast categories, the
/// (class, manufacturer, model) units that fit it, and money ranges in whole dollars.
struct Category {
    name: &'static str,
    tag: &'static str,
    weight: u64,
    forecast: &'static [&'static str],
    units: &'static [(&'static str, &'static str, &'static str)],
    monthly_rate: (f64, f64),
    purchase_price: (f64, f64),
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "Cranes",
        tag: "CR",
        weight: 6,
        forecast: &["Heavy Lift", "Lifting"],
        units: &[
            ("Crawler Crane", "Liebherr", "LR 1300"),
            ("Crawler Crane", "Manitowoc", "MLC300"),
            ("Rough Terrain Crane", "Tadano", "GR-1000XL"),
            ("Rough Terrain Crane", "Grove", "RT765E-2"),
            ("Tower Crane", "Liebherr", "280 EC-H 12"),
            ("All Terrain Crane", "Liebherr", "LTM 1100-5.2"),
            ("All Terrain Crane", "Tadano", "ATF 220G-5"),
        ],
        monthly_rate: (25_000.0, 90_000.0),
        purchase_price: (350_000.0, 1_200_000.0),
    },
    Category {
        name: "Generators",
        tag: "GN",
        weight: 14,
        forecast: &["Temporary Power"],
        units: &[
            ("Diesel Generator 60 kVA", "Atlas Copco", "QAS 60"),
            ("Diesel Generator 100 kVA", "Caterpillar", "XQ100"),
            ("Diesel Generator 250 kVA", "Atlas Copco", "QAS 250"),
            ("Diesel Generator 500 kVA", "Caterpillar", "XQ500"),
            ("Diesel Generator 1 MVA", "Cummins", "C1000 D5"),
        ],
        monthly_rate: (2_000.0, 12_000.0),
        purchase_price: (25_000.0, 350_000.0),
    },
    Category {
        name: "Light Towers",
        tag: "LT",
        weight: 14,
        forecast: &["Site Lighting", "Temporary Power"],
        units: &[
            ("LED Light Tower", "Atlas Copco", "HiLight H6+"),
            ("LED Light Tower", "Generac", "MLT6SMD"),
            ("Solar Light Tower", "Atlas Copco", "HiLight S2+"),
            ("Metal Halide Light Tower", "Terex", "RL4"),
        ],
        monthly_rate: (800.0, 2_500.0),
        purchase_price: (15_000.0, 40_000.0),
    },
    Category {
        name: "Excavators",
        tag: "EX",
        weight: 8,
        forecast: &["Earthworks"],
        units: &[
            ("Hydraulic Excavator 20t", "Caterpillar", "320"),
            ("Hydraulic Excavator 30t", "Volvo", "EC300E"),
            ("Hydraulic Excavator 35t", "Komatsu", "PC360LC-11"),
            ("Hydraulic Excavator 50t", "Hitachi", "ZX490LCH-7"),
            ("Mini Excavator", "Volvo", "EC55D"),
            ("Long Reach Excavator", "Liebherr", "R 950 SME"),
        ],
        monthly_rate: (8_000.0, 35_000.0),
        purchase_price: (150_000.0, 900_000.0),
    },
    Category {
        name: "Trucks",
        tag: "TK",
        weight: 12,
        forecast: &["Haulage", "Site Transport"],
        units: &[
            ("Dump Truck", "Kenworth", "T880"),
            ("Dump Truck", "Mack", "Granite GR64F"),
            ("Articulated Dump Truck", "Volvo", "A40G"),
            ("Articulated Dump Truck", "Caterpillar", "745"),
            ("Water Truck", "Kenworth", "T800"),
            ("Flatbed Truck", "Mack", "Anthem"),
            ("Off-Highway Truck", "Komatsu", "HD605-8"),
        ],
        monthly_rate: (4_000.0, 15_000.0),
        purchase_price: (80_000.0, 450_000.0),
    },
    Category {
        name: "Loaders",
        tag: "LD",
        weight: 8,
        forecast: &["Earthworks", "Material Handling"],
        units: &[
            ("Wheel Loader", "Caterpillar", "966 GC"),
            ("Wheel Loader", "Volvo", "L120H"),
            ("Wheel Loader", "Komatsu", "WA380-8"),
            ("Skid Steer Loader", "Bobcat", "S770"),
            ("Backhoe Loader", "JCB", "3CX"),
            ("Compact Track Loader", "Caterpillar", "299D3"),
        ],
        monthly_rate: (6_000.0, 25_000.0),
        purchase_price: (120_000.0, 700_000.0),
    },
    Category {
        name: "Compressors",
        tag: "CP",
        weight: 9,
        forecast: &["Utilities"],
        units: &[
            ("Portable Air Compressor 185 cfm", "Doosan", "P185"),
            ("Portable Air Compressor 375 cfm", "Sullair", "375H"),
            ("Portable Air Compressor 400 cfm", "Atlas Copco", "XAS 400"),
            ("Portable Air Compressor 900 cfm", "Atlas Copco", "XATS 900"),
            ("Oil-Free Compressor", "Atlas Copco", "PTS 916"),
        ],
        monthly_rate: (1_500.0, 9_000.0),
        purchase_price: (20_000.0, 180_000.0),
    },
    Category {
        name: "Forklifts",
        tag: "FL",
        weight: 8,
        forecast: &["Material Handling"],
        units: &[
            ("Rough Terrain Forklift", "JCB", "940"),
            ("Telehandler", "JLG", "1055"),
            ("Telehandler", "Genie", "GTH-1056"),
            ("Warehouse Forklift", "Toyota", "8FGU25"),
            ("Container Handler", "Hyster", "H1050HD-CH"),
        ],
        monthly_rate: (1_500.0, 6_000.0),
        purchase_price: (25_000.0, 160_000.0),
    },
    Category {
        name: "Scaffolding",
        tag: "SC",
        weight: 7,
        forecast: &["Access"],
        units: &[
            ("System Scaffold", "PERI", "PERI UP Flex"),
            ("Ringlock Scaffold", "Layher", "Allround"),
            ("Mast Climbing Work Platform", "Alimak", "SC 65"),
            ("Suspended Platform", "Tractel", "Tirak X"),
            ("Suspended Access", "Safway", "QuikDeck"),
        ],
        monthly_rate: (1_000.0, 8_000.0),
        purchase_price: (15_000.0, 120_000.0),
    },
    Category {
        name: "Welding Machines",
        tag: "WM",
        weight: 8,
        forecast: &["Fabrication"],
        units: &[
            ("Engine-Driven Welder", "Lincoln Electric", "Vantage 500"),
            ("Engine-Driven Welder", "Miller", "Big Blue 500 Pro"),
            ("Multiprocess Welder", "Miller", "XMT 450"),
            ("Inverter Welder", "ESAB", "Warrior 500i"),
        ],
        monthly_rate: (800.0, 3_500.0),
        purchase_price: (15_000.0, 60_000.0),
    },
    Category {
        name: "Aerial Work Platforms",
        tag: "AW",
        weight: 10,
        forecast: &["Access"],
        units: &[
            ("Scissor Lift", "Genie", "GS-3246"),
            ("Scissor Lift", "JLG", "3246ES"),
            ("Articulating Boom Lift", "JLG", "600AJ"),
            ("Telescopic Boom Lift", "Genie", "S-85 XC"),
            ("Telescopic Boom Lift", "JLG", "1350SJP"),
        ],
        monthly_rate: (1_500.0, 7_000.0),
        purchase_price: (20_000.0, 200_000.0),
    },
];

const AREAS: &[&str] = &[
    "Area 1 - Process Plant",
    "Area 2 - Port Facilities",
    "Area 3 - Camp",
    "Area 4 - Mine Site",
    "Area 5 - Rail Loop",
    "Area 6 - Power Station",
    "Area 7 - Laydown Yard",
    "Area 8 - Tailings",
];

const NOTES: &[&str] = &[
    "Mobilisation delayed by vendor",
    "Awaiting inspection certificate",
    "Extended for shutdown works",
    "Swap to larger unit under review",
    "Operator included in rate",
    "Standby rate applies in wet season",
    "Transferred from laydown yard",
    "Demob after commissioning",
    "Second quote requested",
    "Weekly rate converted to monthly",
];

/// splitmix64: tiny, fast, good enough for demo data, and identical on every target.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// FNV-1a: a stable hash of the org id (std's hasher is not guaranteed stable).
fn seed_of(org_id: &str) -> u64 {
    org_id.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// A whole-dollar amount in lo..=hi, rounded to `step` (lo and hi are multiples of it).
fn money(rng: &mut SplitMix, (lo, hi): (f64, f64), step: f64) -> f64 {
    ((lo + rng.unit() * (hi - lo)) / step).round() * step
}

/// `count` demo records for the org, `PFA-00001` upwards; the same call gives the same records.
pub fn demo_records(org_id: &str, count: usize) -> Vec<PfaRecord> {
    let seed = seed_of(org_id);
    let code = org_id.trim_start_matches("org-").to_uppercase();
    let total_weight: u64 = CATEGORIES.iter().map(|c| c.weight).sum();
    // Equipment tags are numbered per category, from an org-dependent starting point.
    let mut next_tag: Vec<u64> = (0..CATEGORIES.len())
        .map(|i| 1 + (seed >> (i * 5)) % 32)
        .collect();
    let (earliest, latest) = (ymd(2025, 2, 1), ymd(2028, 12, 31));
    (0..count)
        .map(|i| {
            let mut rng = SplitMix(seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut roll = rng.next_u64() % total_weight;
            let cat_idx = CATEGORIES
                .iter()
                .position(|c| {
                    let hit = roll < c.weight;
                    roll = roll.saturating_sub(c.weight);
                    hit
                })
                .expect("weights cover the roll");
            let cat = &CATEGORIES[cat_idx];
            let (class, manufacturer, model) = *rng.pick(cat.units);
            let tag = next_tag[cat_idx];
            next_tag[cat_idx] += 1;

            let source = if rng.chance(0.8) {
                Source::Rental
            } else {
                Source::Purchase
            };
            let (monthly_rate, purchase_price) = match source {
                Source::Rental => (Some(money(&mut rng, cat.monthly_rate, 50.0)), None),
                Source::Purchase => (None, Some(money(&mut rng, cat.purchase_price, 500.0))),
            };
            let dor = if rng.chance(0.3) {
                Dor::BEO
            } else {
                Dor::PROJECT
            };

            // Plan: 1-24 months. Forecast: shifted -30..+90 days, stretched 0.95..1.20,
            // and the start is chosen so that every date stays within 2025-2028.
            let months = rng.range(1, 24);
            let plan_days = ((months as f64 * 30.44).round() as i64 + rng.range(-5, 5)).max(25);
            let stretch = 0.95 + rng.unit() * 0.25;
            let forecast_days = ((plan_days as f64 * stretch).round() as i64).max(1);
            let last_start =
                latest - Duration::days(90 + (plan_days as f64 * 1.2).ceil() as i64 + 1);
            let span = (last_start - earliest).num_days();
            let original_start = earliest + Duration::days(rng.range(0, span));
            let original_end = original_start + Duration::days(plan_days - 1);
            let forecast_start = original_start + Duration::days(rng.range(-30, 90));
            let forecast_end = forecast_start + Duration::days(forecast_days - 1);

            let has_actuals = rng.chance(0.35);
            let is_actualized = has_actuals && rng.chance(0.72);
            let (actual_start, actual_end) = if has_actuals {
                let start =
                    (forecast_start + Duration::days(rng.range(-7, 14))).max(ymd(2025, 1, 1));
                let ended = rng.chance(if is_actualized { 0.6 } else { 0.3 });
                let len = (forecast_days as f64 * (0.3 + rng.unit() * 0.8)).round() as i64;
                let end = (start + Duration::days(len.max(1) - 1)).min(latest);
                (Some(start), ended.then_some(end))
            } else {
                (None, None)
            };
            let notes = if rng.chance(0.15) {
                rng.pick(NOTES).to_string()
            } else {
                String::new()
            };

            PfaRecord {
                pfa_id: format!("PFA-{:05}", i + 1),
                organization_id: org_id.to_owned(),
                category: cat.name.to_owned(),
                class: class.to_owned(),
                forecast_category: rng.pick(cat.forecast).to_string(),
                area_silo: rng.pick(AREAS).to_string(),
                manufacturer: manufacturer.to_owned(),
                model: model.to_owned(),
                contract: format!("{code}-CT-{}", rng.range(1001, 1024)),
                equipment: format!("{}-{tag:04}", cat.tag),
                source,
                dor,
                monthly_rate,
                purchase_price,
                original_start,
                original_end,
                forecast_start,
                forecast_end,
                actual_start,
                actual_end,
                is_actualized,
                is_discontinued: rng.chance(0.04),
                is_funds_transferable: rng.chance(0.15),
                has_plan: rng.chance(0.98),
                has_actuals,
                notes,
                version: 1,
                last_synced_at: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pfa::Delta;
    use std::collections::BTreeSet;

    fn share(records: &[PfaRecord], f: impl Fn(&PfaRecord) -> bool) -> f64 {
        records.iter().filter(|r| f(r)).count() as f64 / records.len() as f64
    }

    #[test]
    fn each_demo_org_gets_its_own_count_and_unknown_orgs_get_none() {
        assert_eq!(demo_count("org-rio"), 2000);
        assert_eq!(demo_count("org-portarthur"), 500);
        assert_eq!(demo_count("org-elsewhere"), 0);
        assert_eq!(demo_records("org-rio", demo_count("org-rio")).len(), 2000);
        assert!(demo_records("org-elsewhere", 0).is_empty());
    }

    #[test]
    fn the_same_call_twice_gives_identical_records() {
        assert_eq!(demo_records("org-rio", 300), demo_records("org-rio", 300));
    }

    #[test]
    fn fewer_records_are_a_prefix_of_more() {
        assert_eq!(
            demo_records("org-rio", 50)[..],
            demo_records("org-rio", 200)[..50]
        );
    }

    #[test]
    fn different_orgs_get_different_data() {
        let rio = demo_records("org-rio", 100);
        let port = demo_records("org-portarthur", 100);
        assert!(rio.iter().all(|r| r.organization_id == "org-rio"));
        assert!(port.iter().all(|r| r.organization_id == "org-portarthur"));
        let same = rio
            .iter()
            .zip(&port)
            .filter(|(a, b)| a.category == b.category && a.forecast_start == b.forecast_start)
            .count();
        assert!(same < 10, "{same} of 100 records look alike");
        assert_ne!(
            rio[0].contract.split('-').next(),
            port[0].contract.split('-').next()
        );
    }

    #[test]
    fn ids_and_equipment_tags_are_unique_and_ids_are_sorted() {
        let records = demo_records("org-rio", 2000);
        assert_eq!(records[0].pfa_id, "PFA-00001");
        assert_eq!(records[1999].pfa_id, "PFA-02000");
        assert!(records.windows(2).all(|w| w[0].pfa_id < w[1].pfa_id));
        let tags: BTreeSet<_> = records.iter().map(|r| r.equipment.as_str()).collect();
        assert_eq!(tags.len(), records.len());
    }

    #[test]
    fn every_record_satisfies_the_domain_rules() {
        let (first, last) = (ymd(2025, 1, 1), ymd(2028, 12, 31));
        for org in ["org-rio", "org-portarthur"] {
            for r in demo_records(org, demo_count(org)) {
                let id = &r.pfa_id;
                assert_eq!(Delta::default().apply(&r).as_ref(), Ok(&r), "{id}");
                assert!(r.original_start <= r.original_end, "{id}");
                assert!(r.forecast_start <= r.forecast_end, "{id}");
                for d in [
                    r.original_start,
                    r.original_end,
                    r.forecast_start,
                    r.forecast_end,
                ] {
                    assert!(first <= d && d <= last, "{id}: {d}");
                }
                match r.source {
                    Source::Rental => assert!(
                        r.monthly_rate.is_some() && r.purchase_price.is_none(),
                        "{id}"
                    ),
                    Source::Purchase => assert!(
                        r.purchase_price.is_some() && r.monthly_rate.is_none(),
                        "{id}"
                    ),
                }
                for m in r.monthly_rate.into_iter().chain(r.purchase_price) {
                    assert!(m > 0.0 && m.fract() == 0.0, "{id}: {m}");
                }
                assert_eq!(r.has_actuals, r.actual_start.is_some(), "{id}");
                assert!(!r.is_actualized || r.has_actuals, "{id}");
                if let (Some(s), Some(e)) = (r.actual_start, r.actual_end) {
                    assert!(s <= e && first <= s && e <= last, "{id}");
                }
                assert!(r.actual_end.is_none() || r.actual_start.is_some(), "{id}");
                assert_eq!((r.version, r.last_synced_at), (1, None), "{id}");
            }
        }
    }

    #[test]
    fn the_mix_is_roughly_as_specified() {
        let records = demo_records("org-rio", 2000);
        let within =
            |name: &str, x: f64, lo: f64, hi: f64| assert!(lo <= x && x <= hi, "{name}: {x}");
        within(
            "rental",
            share(&records, |r| r.source == Source::Rental),
            0.70,
            0.90,
        );
        within("beo", share(&records, |r| r.dor == Dor::BEO), 0.22, 0.38);
        within("actuals", share(&records, |r| r.has_actuals), 0.28, 0.42);
        within(
            "actualized",
            share(&records, |r| r.is_actualized),
            0.18,
            0.32,
        );
        within(
            "discontinued",
            share(&records, |r| r.is_discontinued),
            0.01,
            0.08,
        );
        within(
            "transferable",
            share(&records, |r| r.is_funds_transferable),
            0.10,
            0.20,
        );
        within("plan", share(&records, |r| r.has_plan), 0.95, 1.0);
        within(
            "notes",
            share(&records, |r| !r.notes.is_empty()),
            0.05,
            0.30,
        );
        let categories: BTreeSet<_> = records.iter().map(|r| r.category.as_str()).collect();
        assert!(categories.len() >= 8, "{categories:?}");
        let cranes: Vec<f64> = records
            .iter()
            .filter(|r| r.category == "Cranes")
            .filter_map(|r| r.monthly_rate)
            .collect();
        assert!(!cranes.is_empty() && cranes.iter().all(|m| (25_000.0..=90_000.0).contains(m)));
    }
}
