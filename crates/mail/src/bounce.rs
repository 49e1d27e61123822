//! Bounces and complaints from the mail that campaigns send.
//!
//! Sending on to addresses that bounce or to people who pressed "report spam" ruins a
//! domain's reputation within days, so the server suppresses them as soon as the report comes
//! back. This module reads the two standard formats, with `mail-parser` doing the MIME work:
//! delivery status notifications (RFC 3464, `multipart/report; report-type=delivery-status`),
//! as sent by Postfix, Exchange and most other servers, and abuse feedback reports (ARF,
//! RFC 5965, `report-type=feedback-report`) from mailbox providers' feedback loops. Anything
//! else (auto-replies, free-text bounces) is not a report: [`parse_report`] returns `None`.

use mail_parser::{Message, MessageParser, MimeHeaders as _, PartType};

/// What a report says happened to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// Permanent failure (DSN `Action: failed` with a 5.x.x status): never send there again.
    HardBounce,
    /// The server gave up on a temporary failure (DSN `Action: failed` with a 4.x.x status).
    SoftBounce,
    /// The recipient marked the mail as spam, fraud or a virus (ARF).
    Complaint,
    /// Delivery is still being retried (DSN `Action: delayed`).
    Delayed,
}

/// A parsed bounce or complaint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub kind: ReportKind,
    /// The recipient address concerned, as LeadGen sent to it where the report says so.
    pub recipient: Option<String>,
    /// The Message-ID of the returned message, without `<>`.
    pub original_message_id: Option<String>,
    /// The enhanced status code, e.g. `5.1.1` (DSN only).
    pub status: Option<String>,
    /// The remote server's diagnostic, e.g. `550 5.1.1 User unknown` (DSN only).
    pub diagnostic: Option<String>,
}

/// Parses a DSN or ARF report; `None` if `raw` is neither, or reports success (`delivered`,
/// `relayed`, `expanded`) or a feedback type that is not a complaint (`not-spam`,
/// `auth-failure`).
pub fn parse_report(raw: &[u8]) -> Option<Report> {
    let message = MessageParser::default().parse(raw)?;
    let mut dsn: Option<Vec<Vec<(String, String)>>> = None;
    let mut feedback: Option<Vec<(String, String)>> = None;
    let mut original_message_id = None;
    let mut original_to = None;
    for part in message.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let ctype = ct.ctype().to_ascii_lowercase();
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if dsn.is_none() => {
                dsn = Some(field_blocks(&String::from_utf8_lossy(part.contents())));
            }
            ("message", "feedback-report") if feedback.is_none() => {
                let blocks = field_blocks(&String::from_utf8_lossy(part.contents()));
                feedback = Some(blocks.into_iter().flatten().collect());
            }
            ("message", "rfc822" | "global") | ("text", "rfc822-headers")
                if original_message_id.is_none() =>
            {
                let parsed;
                let returned: &Message = match &part.body {
                    PartType::Message(m) => m,
                    // Headers that do not parse leave the Message-ID unknown, not the report.
                    _ => match MessageParser::default().parse_headers(part.contents()) {
                        Some(m) => {
                            parsed = m;
                            &parsed
                        }
                        None => continue,
                    },
                };
                original_message_id = returned.message_id().map(strip_angles);
                original_to = returned
                    .to()
                    .and_then(|to| to.first())
                    .and_then(|addr| addr.address())
                    .map(str::to_owned);
            }
            _ => {}
        }
    }

    if let Some(fields) = feedback {
        let kind = field(&fields, "feedback-type")?.to_ascii_lowercase();
        if !matches!(kind.as_str(), "abuse" | "fraud" | "virus" | "other") {
            return None;
        }
        let recipient = field(&fields, "original-rcpt-to")
            .or_else(|| field(&fields, "removal-recipient"))
            .map(address_value)
            .or(original_to);
        return Some(Report {
            kind: ReportKind::Complaint,
            recipient,
            original_message_id,
            status: None,
            diagnostic: None,
        });
    }

    // Per-recipient blocks follow the per-message block; the first that failed wins, else the
    // first delayed one.
    let blocks = dsn?;
    let recipients: Vec<&Vec<(String, String)>> = blocks
        .iter()
        .filter(|b| field(b, "action").is_some())
        .collect();
    let action_is = |b: &Vec<(String, String)>, a: &str| {
        field(b, "action").is_some_and(|v| v.eq_ignore_ascii_case(a))
    };
    let block = recipients
        .iter()
        .find(|b| action_is(b, "failed"))
        .or_else(|| recipients.iter().find(|b| action_is(b, "delayed")))?;
    let diagnostic = field(block, "diagnostic-code").map(|d| {
        // "smtp; 550 5.1.1 …": the diagnostic type is not part of the text.
        match d.split_once(';') {
            Some((kind, text)) if !kind.contains(' ') => text.trim().to_owned(),
            _ => d.trim().to_owned(),
        }
    });
    let status = field(block, "status")
        .and_then(status_code)
        .or_else(|| diagnostic.as_deref().and_then(find_status_code));
    let kind = if action_is(block, "delayed") {
        ReportKind::Delayed
    } else if status.as_deref().is_some_and(|s| s.starts_with('4')) {
        ReportKind::SoftBounce
    } else {
        ReportKind::HardBounce
    };
    let recipient = field(block, "original-recipient")
        .or_else(|| field(block, "final-recipient"))
        .or_else(|| field(block, "x-actual-recipient"))
        .map(address_value)
        .filter(|a| a.contains('@'))
        .or(original_to);
    Some(Report {
        kind,
        recipient,
        original_message_id,
        status,
        diagnostic,
    })
}

/// Splits a `message/delivery-status` style body into blank-line separated blocks of
/// (lowercase name, unfolded value) fields.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `rfc822; <user@example.com>` → `user@example.com`.
fn address_value(value: &str) -> String {
    let address = match value.split_once(';') {
        Some((_, address)) => address,
        None => value,
    };
    strip_angles(address.trim())
}

fn strip_angles(value: &str) -> String {
    let value = value.trim();
    value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value)
        .to_owned()
}

/// An enhanced status code (`5.1.1`) at the start of a Status field (`5.1.1 (user unknown)`).
fn status_code(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    is_status_code(code).then(|| code.to_owned())
}

/// The first enhanced status code in a diagnostic text.
fn find_status_code(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ';' || c == ',' || c == '(' || c == ')')
        .find(|w| is_status_code(w))
        .map(str::to_owned)
}

fn is_status_code(s: &str) -> bool {
    let mut parts = s.split('.');
    let class = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let detail = parts.next().unwrap_or_default();
    matches!(class, "2" | "4" | "5")
        && parts.next().is_none()
        && (1..=3).contains(&subject.len())
        && subject.bytes().all(|b| b.is_ascii_digit())
        && (1..=3).contains(&detail.len())
        && detail.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &str = "Return-Path: <>\r\n\
Received: by mx.example.com (Postfix) id 3F1A2C0123; Tue, 14 Nov 2023 22:13:25 +0000 (UTC)\r\n\
Date: Tue, 14 Nov 2023 22:13:25 +0000 (UTC)\r\n\
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bounces+c42@mail.example.com\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"3F1A2C0123.1700000005/mx.example.com\"\r\n\
Message-Id: <20231114221325.3F1A2C0123@mx.example.com>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--3F1A2C0123.1700000005/mx.example.com\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at host mx.example.com.\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
<nobody@example.org>: host mx.example.org[192.0.2.10] said: 550 5.1.1\r\n\
\x20   <nobody@example.org>: Recipient address rejected: User unknown (in reply to\r\n\
\x20   RCPT TO command)\r\n\
\r\n\
--3F1A2C0123.1700000005/mx.example.com\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
X-Postfix-Queue-ID: 3F1A2C0123\r\n\
X-Postfix-Sender: rfc822; bounces+c42@mail.example.com\r\n\
Arrival-Date: Tue, 14 Nov 2023 22:13:21 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; nobody@example.org\r\n\
Original-Recipient: rfc822;nobody@example.org\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.example.org\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
\r\n\
--3F1A2C0123.1700000005/mx.example.com\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
From: Ada Lovelace <ada@mail.example.com>\r\n\
To: nobody@example.org\r\n\
Subject: Quick question\r\n\
Message-ID: <0190a1b2-c3d4.e5f6@mail.example.com>\r\n\
\r\n\
--3F1A2C0123.1700000005/mx.example.com--\r\n";

    const EXCHANGE: &str = "From: postmaster@contoso.example\r\n\
To: <bounces+c42@mail.example.com>\r\n\
Date: Wed, 15 Nov 2023 08:01:02 +0000\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"b3c7e6a1-4f2d-4d0b-9a55-0c0ffee00001\"\r\n\
Content-Language: en-US\r\n\
Message-ID: <b1c2d3e4-0000-4000-8000-000000000001@DM6PR01MB0001.namprd01.prod.outlook.com>\r\n\
Subject: Undeliverable: Quick question\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
\r\n\
--b3c7e6a1-4f2d-4d0b-9a55-0c0ffee00001\r\n\
Content-Type: multipart/alternative; differences=Content-Type;\r\n\
\tboundary=\"alt-0001\"\r\n\
\r\n\
--alt-0001\r\n\
Content-Type: text/plain; charset=\"us-ascii\"\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Your message to j.doe@contoso.example couldn't be delivered.\r\n\
--alt-0001\r\n\
Content-Type: text/html; charset=\"us-ascii\"\r\n\
\r\n\
<html><body><p>Your message couldn't be delivered.</p></body></html>\r\n\
--alt-0001--\r\n\
\r\n\
--b3c7e6a1-4f2d-4d0b-9a55-0c0ffee00001\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns;DM6PR01MB0001.namprd01.prod.outlook.com\r\n\
Received-From-MTA: dns;mail.example.com\r\n\
Arrival-Date: Wed, 15 Nov 2023 08:01:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822;J.Doe@contoso.example\r\n\
Action: failed\r\n\
Status: 5.1.10\r\n\
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not\r\n\
\x20found by SMTP address lookup\r\n\
X-Display-Name: Doe, John\r\n\
\r\n\
--b3c7e6a1-4f2d-4d0b-9a55-0c0ffee00001\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Ada Lovelace <ada@mail.example.com>\r\n\
To: J.Doe@contoso.example\r\n\
Subject: Quick question\r\n\
Message-ID: <m-77@mail.example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hi John\r\n\
\r\n\
--b3c7e6a1-4f2d-4d0b-9a55-0c0ffee00001--\r\n";

    const ARF: &str = "From: <staff@hotmail.example>\r\n\
Date: Thu, 16 Nov 2023 10:00:00 +0000\r\n\
Subject: complaint about message from 192.0.2.1\r\n\
To: <fbl@mail.example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report;\r\n\
\x20     boundary=\"part1_13d.2e68ed54_boundary\"\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
This is an email abuse report for an email message received from IP\r\n\
192.0.2.1 on Thu, 16 Nov 2023 09:58:00 +0000.\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: SomeGenerator/1.0\r\n\
Version: 1\r\n\
Original-Mail-From: <bounces+c42@mail.example.com>\r\n\
Original-Rcpt-To: <carol@hotmail.example>\r\n\
Received-Date: Thu, 16 Nov 2023 09:58:00 +0000\r\n\
Source-IP: 192.0.2.1\r\n\
Reported-Domain: mail.example.com\r\n\
\r\n\
--part1_13d.2e68ed54_boundary\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: inline\r\n\
\r\n\
From: <ada@mail.example.com>\r\n\
Received: from mail.example.com (mail.example.com [192.0.2.1])\r\n\
\x20     by mx.hotmail.example; Thu, 16 Nov 2023 09:58:00 +0000\r\n\
To: <redacted@hotmail.example>\r\n\
Subject: Quick question\r\n\
Message-ID: <c42-r9@mail.example.com>\r\n\
Date: Thu, 16 Nov 2023 09:57:00 +0000\r\n\
\r\n\
Hi Carol\r\n\
--part1_13d.2e68ed54_boundary--\r\n";

    #[test]
    fn postfix_hard_bounce() {
        assert_eq!(
            parse_report(POSTFIX.as_bytes()),
            Some(Report {
                kind: ReportKind::HardBounce,
                recipient: Some("nobody@example.org".into()),
                original_message_id: Some("0190a1b2-c3d4.e5f6@mail.example.com".into()),
                status: Some("5.1.1".into()),
                diagnostic: Some(
                    "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"
                        .into()
                ),
            })
        );
    }

    #[test]
    fn exchange_hard_bounce() {
        assert_eq!(
            parse_report(EXCHANGE.as_bytes()),
            Some(Report {
                kind: ReportKind::HardBounce,
                recipient: Some("J.Doe@contoso.example".into()),
                original_message_id: Some("m-77@mail.example.com".into()),
                status: Some("5.1.10".into()),
                diagnostic: Some(
                    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP \
                     address lookup"
                        .into()
                ),
            })
        );
    }

    #[test]
    fn soft_bounce_and_delay() {
        let soft = POSTFIX
            .replace("Status: 5.1.1", "Status: 4.2.2")
            .replace("550 5.1.1", "452 4.2.2");
        let report = parse_report(soft.as_bytes());
        assert_eq!(
            report.as_ref().map(|r| r.kind),
            Some(ReportKind::SoftBounce)
        );
        assert_eq!(report.and_then(|r| r.status).as_deref(), Some("4.2.2"));

        let delayed = POSTFIX
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.4.1");
        assert_eq!(
            parse_report(delayed.as_bytes()).map(|r| r.kind),
            Some(ReportKind::Delayed)
        );
    }

    #[test]
    fn status_from_diagnostic_when_missing() {
        let no_status = POSTFIX.replace("Status: 5.1.1\r\n", "");
        let report = parse_report(no_status.as_bytes());
        assert_eq!(report.and_then(|r| r.status).as_deref(), Some("5.1.1"));
    }

    #[test]
    fn success_notifications_are_not_bounces() {
        let delivered = POSTFIX
            .replace("Action: failed", "Action: delivered")
            .replace("Status: 5.1.1", "Status: 2.0.0");
        assert_eq!(parse_report(delivered.as_bytes()), None);
    }

    #[test]
    fn arf_complaint() {
        assert_eq!(
            parse_report(ARF.as_bytes()),
            Some(Report {
                kind: ReportKind::Complaint,
                recipient: Some("carol@hotmail.example".into()),
                original_message_id: Some("c42-r9@mail.example.com".into()),
                status: None,
                diagnostic: None,
            })
        );
        // Without Original-Rcpt-To, the returned message's To is the best guess.
        let redacted = ARF.replace("Original-Rcpt-To: <carol@hotmail.example>\r\n", "");
        assert_eq!(
            parse_report(redacted.as_bytes())
                .and_then(|r| r.recipient)
                .as_deref(),
            Some("redacted@hotmail.example")
        );
        let not_spam = ARF.replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
        assert_eq!(parse_report(not_spam.as_bytes()), None);
    }

    #[test]
    fn ordinary_mail_is_not_a_report() {
        assert_eq!(
            parse_report(b"From: a@example.com\r\nSubject: Out of office\r\n\r\nAway.\r\n"),
            None
        );
        assert_eq!(parse_report(b""), None);
        assert_eq!(parse_report(&[0xff; 64]), None);
    }
}
