//! Files to upload: the built-in `people` schema's CSV (id, name, email, age, joined).

/// `rows` rows of people; every `bad_every`-th has an age that is not a number (0: none).
pub fn people_csv(rows: usize, bad_every: usize) -> Vec<u8> {
    let mut csv = String::from("id,name,email,age,joined\n");
    for i in 1..=rows {
        let age = if bad_every > 0 && i % bad_every == 0 {
            "x".to_owned()
        } else {
            (i % 90).to_string()
        };
        csv.push_str(&format!(
            "{i},Person {i},p{i}@example.org,{age},2024-01-{:02}\n",
            i % 28 + 1
        ));
    }
    csv.into_bytes()
}
