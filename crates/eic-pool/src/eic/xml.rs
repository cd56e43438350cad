//! Just enough XML for EC2 Query API replies: the text of named fields of repeated records.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Collects, for every element at `record_path` (e.g. `A/b/item`), the text of each field given
/// as a path relative to the record (e.g. `instanceState/name`); a missing field is `""`.
/// Only exact paths match, so nested lists with the same element names are not confused.
// Over 60 lines: one event loop over the XML reader, its states kept together.
pub(crate) fn records(
    xml: &str,
    record_path: &str,
    fields: &[&str],
) -> Result<Vec<Vec<String>>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    // No trimming while reading: it would eat the spaces around entity references.
    let mut path: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut current: Option<Vec<String>> = None;
    loop {
        match reader.read_event()? {
            Event::Start(start) => {
                path.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
                if path.join("/") == record_path {
                    current = Some(vec![String::new(); fields.len()]);
                }
            }
            Event::End(_) => {
                if path.join("/") == record_path {
                    records.extend(current.take());
                }
                path.pop();
            }
            Event::Text(text) => {
                if let Some(record) = current.as_mut() {
                    // EC2 answers XML 1.0.
                    let value = text.xml_content(quick_xml::XmlVersion::Explicit1_0)?;
                    if let Some(slot) = field_slot(&path, record_path, fields) {
                        record[slot].push_str(&value);
                    }
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(record) = current.as_mut() {
                    let resolved =
                        reference
                            .resolve_char_ref()?
                            .or_else(|| match reference.as_ref() {
                                b"amp" => Some('&'),
                                b"lt" => Some('<'),
                                b"gt" => Some('>'),
                                b"quot" => Some('"'),
                                b"apos" => Some('\''),
                                _ => None,
                            });
                    if let (Some(c), Some(slot)) =
                        (resolved, field_slot(&path, record_path, fields))
                    {
                        record[slot].push(c);
                    }
                }
            }
            Event::Eof => {
                for record in &mut records {
                    for value in record.iter_mut() {
                        *value = value.trim().to_owned();
                    }
                }
                return Ok(records);
            }
            _ => {}
        }
    }
}

fn field_slot(path: &[String], record_path: &str, fields: &[&str]) -> Option<usize> {
    let joined = path.join("/");
    let relative = joined.strip_prefix(record_path)?.strip_prefix('/')?;
    fields.iter().position(|f| *f == relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_each_record_and_ignores_nested_lookalikes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <reservationSet><item><instancesSet><item>
    <instanceId>i-0abc</instanceId>
    <instanceState><code>16</code><name>running</name></instanceState>
    <privateIpAddress>10.0.1.5</privateIpAddress>
    <networkInterfaceSet><item><privateIpAddress>10.9.9.9</privateIpAddress></item></networkInterfaceSet>
    <vpcId>vpc-1</vpcId><subnetId>subnet-1</subnetId>
  </item></instancesSet></item></reservationSet>
</DescribeInstancesResponse>"#;
        let found = records(
            xml,
            "DescribeInstancesResponse/reservationSet/item/instancesSet/item",
            &[
                "instanceId",
                "privateIpAddress",
                "instanceState/name",
                "ipv6Address",
            ],
        )
        .unwrap();
        assert_eq!(found, vec![vec!["i-0abc", "10.0.1.5", "running", ""]]);
    }

    #[test]
    fn reads_an_error_reply_with_entities() {
        let xml = "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>\
                   <Message>The instance &apos;i-1&apos; does not exist</Message></Error></Errors></Response>";
        let found = records(xml, "Response/Errors/Error", &["Code", "Message"]).unwrap();
        assert_eq!(found[0][0], "InvalidInstanceID.NotFound");
        assert_eq!(found[0][1], "The instance 'i-1' does not exist");
    }
}
