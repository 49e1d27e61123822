//! Synthetic leads for the demo organization and the benchmarks: realistic in shape (names with
//! accents and apostrophes, companies with commas and quotes, real-looking titles, seniorities,
//! industries, sizes, US states and other countries, some leads without email or phone, some
//! opted out), deterministic for a given seed, written as CSV in LeadGen's import template.

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIRST: [&str; 40] = [
    "Ann", "Bo", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "José", "Kai",
    "Leila", "Marta", "Nils", "Olu", "Priya", "Quinn", "Rosa", "Sean", "Tomás", "Uma", "Victor",
    "Wei", "Ximena", "Yusuf", "Zoë", "Aoife", "Björn", "Carmen", "Deepak", "Eve", "Fatima",
    "Gustav", "Hana", "Ivan", "Julia", "Karim", "Lena", "Mateo", "Nadia",
];
const LAST: [&str; 40] = [
    "Lee",
    "Chen",
    "Núñez",
    "O'Brien",
    "Müller",
    "Kowalski",
    "MacDonald",
    "van der Berg",
    "Silva",
    "Dubois",
    "Evans",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Khan",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ulrich",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Al-Hassan",
    "Byrne",
    "Costa",
    "D'Angelo",
    "Eriksson",
    "Fischer",
    "Gómez",
    "Horvat",
    "Iqbal",
];
const TITLES: [(&str, &str, &str); 16] = [
    ("Chief Executive Officer", "c_level", "Executive"),
    ("CTO", "c_level", "Engineering"),
    ("VP Sales", "vp", "Sales"),
    ("VP Marketing", "vp", "Marketing"),
    ("Head of Growth", "head", "Marketing"),
    ("Head of Procurement", "head", "Operations"),
    ("Director of Engineering", "director", "Engineering"),
    ("Director, IT", "director", "IT"),
    ("Sales Manager", "manager", "Sales"),
    ("Marketing Manager", "manager", "Marketing"),
    ("Senior Account Executive", "senior", "Sales"),
    ("Senior Software Engineer", "senior", "Engineering"),
    ("Account Executive", "entry", "Sales"),
    ("Founder", "founder", "Executive"),
    ("Owner", "owner", "Executive"),
    ("Sales Intern", "intern", "Sales"),
];
const COMPANY_WORDS: [&str; 24] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Massive",
    "Dynamic",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Blue Sky",
    "Red Rock",
    "Silver Line",
    "Green Leaf",
    "Bright Path",
];
const COMPANY_SUFFIX: [&str; 8] = [
    "Inc.", "Ltd", "GmbH", "Labs", "Group", "Systems", "& Co", "Holdings",
];
const INDUSTRIES: [&str; 12] = [
    "Software Publishers",
    "Computer Systems Design",
    "Management Consulting",
    "Commercial Banking",
    "Pharmaceutical Manufacturing",
    "Medical Equipment",
    "Freight Trucking",
    "Advertising Agencies",
    "Engineering Services",
    "Insurance Carriers",
    "Electronic Shopping",
    "Telecommunications",
];
const RANGES: [&str; 8] = [
    "1-10",
    "11-50",
    "51-200",
    "201-500",
    "501-1000",
    "1001-5000",
    "5001-10000",
    "10001+",
];
const PLACES: [(&str, &str, &str); 14] = [
    ("San Francisco", "CA", "US"),
    ("Los Angeles", "CA", "US"),
    ("New York", "NY", "US"),
    ("Austin", "TX", "US"),
    ("Chicago", "IL", "US"),
    ("Seattle", "WA", "US"),
    ("Boston", "MA", "US"),
    ("Toronto", "ON", "CA"),
    ("London", "ENG", "GB"),
    ("Berlin", "BE", "DE"),
    ("Paris", "IDF", "FR"),
    ("Madrid", "MD", "ES"),
    ("São Paulo", "SP", "BR"),
    ("Sydney", "NSW", "AU"),
];
const STATUSES: [&str; 6] = [
    "new",
    "new",
    "contacted",
    "qualified",
    "unqualified",
    "customer",
];
const TAGS: [&str; 8] = [
    "webinar",
    "trade-show",
    "inbound",
    "partner",
    "enterprise",
    "smb",
    "churn-risk",
    "newsletter",
];

pub const HEADER: &str = "first_name,last_name,title,seniority,department,email,phone,linkedin_url,company_name,company_domain,industry,employee_range,city,region,country,source,status,tags,do_not_contact";

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn ascii(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' | 'ë' => Some('e'),
            'ñ' => Some('n'),
            'ú' => Some('u'),
            'ó' => Some('o'),
            'á' => Some('a'),
            'ü' => Some('u'),
            'ö' => Some('o'),
            'ã' => Some('a'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Writes `rows` leads after the header. Emails are unique within a run (`offset` shifts them,
/// for a second organization).
pub fn write_csv(out: &mut impl Write, rows: u64, seed: u64, offset: u64) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    writeln!(out, "{HEADER}")?;
    for i in offset..offset + rows {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let (title, seniority, dept) = TITLES[rng.random_range(0..TITLES.len())];
        let company_n = rng.random_range(0..5000u32);
        let company = format!(
            "{} {}{}",
            COMPANY_WORDS[company_n as usize % COMPANY_WORDS.len()],
            COMPANY_SUFFIX[(company_n as usize / COMPANY_WORDS.len()) % COMPANY_SUFFIX.len()],
            if company_n % 7 == 0 { ", Inc." } else { "" },
        );
        let domain = format!(
            "{}{}.example",
            ascii(COMPANY_WORDS[company_n as usize % COMPANY_WORDS.len()]),
            company_n
        );
        let email = if rng.random_ratio(92, 100) {
            format!("{}.{}{i}@{domain}", ascii(first), ascii(last))
        } else {
            String::new()
        };
        let phone = if rng.random_ratio(70, 100) {
            format!("+1 415 555 {:04}", rng.random_range(0..10_000))
        } else {
            String::new()
        };
        let (city, region, country) = PLACES[rng.random_range(0..PLACES.len())];
        let tags: Vec<&str> = (0..rng.random_range(0..3))
            .map(|_| TAGS[rng.random_range(0..TAGS.len())])
            .collect();
        let mut tags = tags;
        tags.dedup();
        writeln!(
            out,
            "{},{},{},{seniority},{dept},{email},{phone},https://www.linkedin.com/in/lead{i},{},{domain},{},{},{},{region},{country},{},{},{},{}",
            quote(first),
            quote(last),
            quote(title),
            quote(&company),
            INDUSTRIES[rng.random_range(0..INDUSTRIES.len())],
            RANGES[rng.random_range(0..RANGES.len())],
            quote(city),
            ["web", "import", "event", "referral"][rng.random_range(0..4)],
            STATUSES[rng.random_range(0..STATUSES.len())],
            quote(&tags.join(";")),
            rng.random_ratio(3, 100),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_file_and_every_row_imports() {
        let mut a = Vec::new();
        write_csv(&mut a, 500, 7, 0).unwrap();
        let mut b = Vec::new();
        write_csv(&mut b, 500, 7, 0).unwrap();
        assert_eq!(a, b);
        let (reader, mapping) =
            leadgen_import::Reader::new(a.as_slice(), leadgen_import::Limits::default()).unwrap();
        assert_eq!(mapping.dialect, leadgen_import::Dialect::LeadGen);
        mapping.validate().unwrap();
        let mut n = 0;
        for o in reader {
            let o = o.unwrap();
            assert!(o.issues.is_empty(), "{:?}", o.issues);
            assert!(o.record.is_some());
            n += 1;
        }
        assert_eq!(n, 500);
    }
}
