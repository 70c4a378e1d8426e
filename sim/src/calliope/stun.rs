//! STUN (RFC 5389) as far as the simulator needs it, written by hand: recognise a Binding request,
//! build a Binding success response with XOR-MAPPED-ADDRESS, and RFC 4571 framing for stream
//! transports.

use std::net::{IpAddr, SocketAddr};

/// The RFC 5389 magic cookie.
pub(crate) const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Binding request message type.
pub(crate) const BINDING_REQUEST: u16 = 0x0001;
/// Binding success response message type.
pub(crate) const BINDING_SUCCESS: u16 = 0x0101;
/// XOR-MAPPED-ADDRESS attribute type.
pub(crate) const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Length of the STUN header.
pub(crate) const HEADER_LEN: usize = 20;

/// A STUN transaction id.
pub(crate) type TxId = [u8; 12];

/// The transaction id of a well-formed Binding request (header checks: two zero top bits, type
/// 0x0001, magic cookie, length a multiple of 4 that fits the datagram); `None` for anything else.
pub(crate) fn binding_request(msg: &[u8]) -> Option<TxId> {
    if msg.len() < HEADER_LEN || msg[0] & 0xC0 != 0 {
        return None;
    }
    let kind = u16::from_be_bytes([msg[0], msg[1]]);
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let cookie = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if kind != BINDING_REQUEST || cookie != MAGIC_COOKIE || len % 4 != 0 {
        return None;
    }
    if HEADER_LEN + len > msg.len() {
        return None;
    }
    let mut txid = [0_u8; 12];
    txid.copy_from_slice(&msg[8..20]);
    Some(txid)
}

/// A Binding success response for `txid` whose XOR-MAPPED-ADDRESS is `mapped`.
pub(crate) fn binding_success(txid: &TxId, mapped: SocketAddr) -> Vec<u8> {
    let (family, addr): (u8, Vec<u8>) = match mapped.ip() {
        IpAddr::V4(ip) => {
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            (0x01, x.to_be_bytes().to_vec())
        }
        IpAddr::V6(ip) => {
            let mut key = [0_u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let x: Vec<u8> = ip.octets().iter().zip(key).map(|(a, k)| a ^ k).collect();
            (0x02, x)
        }
    };
    // The cookie's top 16 bits; the value fits u16 after the shift.
    let cookie_hi = u16::try_from(MAGIC_COOKIE >> 16).unwrap_or(0x2112);
    let xport = mapped.port() ^ cookie_hi;
    let attr_len = 4 + addr.len();
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + attr_len);
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&u16::try_from(4 + attr_len).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(txid);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&u16::try_from(attr_len).unwrap_or(0).to_be_bytes());
    out.push(0);
    out.push(family);
    out.extend_from_slice(&xport.to_be_bytes());
    out.extend_from_slice(&addr);
    out
}

/// `n` (at least 20) random bytes that are not STUN: the first byte has its top bits set.
pub(crate) fn garbage(n: usize) -> Vec<u8> {
    use rand::RngCore as _;
    let mut out = vec![0_u8; n.max(20)];
    rand::rng().fill_bytes(&mut out);
    out[0] |= 0xC0;
    out
}

/// A transaction id that differs from `txid` in every byte.
pub(crate) fn other_txid(txid: &TxId) -> TxId {
    let mut out = *txid;
    for b in &mut out {
        *b ^= 0xA5;
    }
    out
}

/// `msg` with its RFC 4571 2-byte big-endian length prefix (messages over 65535 bytes are cut).
pub(crate) fn frame(msg: &[u8]) -> Vec<u8> {
    let len = msg.len().min(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(2 + len);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&msg[..len]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(txid: &TxId) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x00];
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(txid);
        m
    }

    #[test]
    fn recognises_binding_requests_only() {
        let txid = [7_u8; 12];
        assert_eq!(binding_request(&request(&txid)), Some(txid));
        let mut wrong_cookie = request(&txid);
        wrong_cookie[4] = 0;
        assert_eq!(binding_request(&wrong_cookie), None);
        let mut response = request(&txid);
        response[1] = 0x01;
        response[0] = 0x01;
        assert_eq!(binding_request(&response), None);
        let mut long = request(&txid);
        long[3] = 8; // claims 8 bytes of attributes it does not carry
        assert_eq!(binding_request(&long), None);
        assert_eq!(binding_request(b"hello, this is not stun at all"), None);
        assert_eq!(binding_request(&garbage(20)), None);
    }

    #[test]
    fn success_carries_xor_mapped_address() {
        let txid = [1_u8; 12];
        let addr: SocketAddr = "127.0.0.1:32853".parse().expect("addr");
        let r = binding_success(&txid, addr);
        assert_eq!(r.len(), 32);
        assert_eq!(&r[0..2], &[0x01, 0x01]);
        assert_eq!(&r[2..4], &[0x00, 12]);
        assert_eq!(&r[8..20], &txid);
        assert_eq!(&r[20..24], &[0x00, 0x20, 0x00, 0x08]);
        assert_eq!(r[25], 0x01);
        let port = u16::from_be_bytes([r[26], r[27]]) ^ 0x2112;
        assert_eq!(port, 32853);
        let ip = u32::from_be_bytes([r[28], r[29], r[30], r[31]]) ^ MAGIC_COOKIE;
        assert_eq!(std::net::Ipv4Addr::from(ip), std::net::Ipv4Addr::LOCALHOST);
        let v6 = binding_success(&txid, "[::1]:5".parse().expect("v6"));
        assert_eq!(v6.len(), 44);
        assert_ne!(other_txid(&txid), txid);
        assert_eq!(frame(&[1, 2, 3]), vec![0, 3, 1, 2, 3]);
    }
}
