//! What the node draws into every raw frame of a far-end participant's video (I420, the layout
//! GStreamer gives `videotestsrc`): the participant's number in white in the top-left quarter, and
//! the bottom 1/12 timecode strip (32 blocks, most significant bit first, white 1, black 0, the
//! wall clock in ms mod 2³² when the frame was made). The colour around them is `videotestsrc`'s;
//! the centre half of the picture is never drawn on.
//!
//! White and black are limited-range luma with neutral chroma, so they read the same whatever
//! matrix (BT.601 or BT.709) the receiver converts with.

/// Luma of white and black (limited range) and neutral chroma.
pub(crate) const WHITE_Y: u8 = 235;
pub(crate) const BLACK_Y: u8 = 16;
const NEUTRAL_C: u8 = 128;
/// Luma between black and white: a sample above it reads as white.
#[cfg(test)]
const THRESHOLD_Y: u8 = 126;
/// Bits in the timecode strip.
pub(crate) const TIMECODE_BITS: u32 = 32;

/// Glyphs 0–9, 3 cells wide and 5 tall; each row's bits left to right from bit 2.
const FONT: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];
const GLYPH_W: usize = 3;
#[cfg(test)]
const GLYPH_H: usize = 5;

/// The planes of one I420 frame with GStreamer's default strides and offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct I420 {
    pub width: usize,
    pub height: usize,
    pub y_stride: usize,
    c_stride: usize,
    u_offset: usize,
    v_offset: usize,
    /// Bytes of the whole frame.
    pub size: usize,
}

impl I420 {
    pub(crate) fn new(width: usize, height: usize) -> Self {
        let y_stride = width.next_multiple_of(4);
        let c_stride = width.div_ceil(2).next_multiple_of(4);
        let rows = height.next_multiple_of(2);
        let u_offset = y_stride * rows;
        let v_offset = u_offset + c_stride * rows / 2;
        Self {
            width,
            height,
            y_stride,
            c_stride,
            u_offset,
            v_offset,
            size: v_offset + c_stride * rows / 2,
        }
    }

    /// Sets luma `y` over `[x0, x1) × [y0, y1)` and neutral chroma over the chroma samples it
    /// touches. Clipped to the frame.
    fn fill(&self, frame: &mut [u8], (x0, y0, x1, y1): (usize, usize, usize, usize), y: u8) {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        if x0 >= x1 || y0 >= y1 || frame.len() < self.size {
            return;
        }
        for row in y0..y1 {
            let at = row * self.y_stride;
            frame[at + x0..at + x1].fill(y);
        }
        let (cx0, cx1) = (x0 / 2, x1.div_ceil(2));
        for row in y0 / 2..y1.div_ceil(2) {
            for plane in [self.u_offset, self.v_offset] {
                let at = plane + row * self.c_stride;
                frame[at + cx0..at + cx1].fill(NEUTRAL_C);
            }
        }
    }

    /// Where the number goes: its top-left corner and the side of one font cell. The digit ends
    /// above a quarter of the height, so the centre half stays plain.
    fn digit_cells(&self) -> (usize, usize, usize) {
        let cell = (self.height / 30).max(1);
        let even = |v: usize| v & !1;
        (even(self.width / 24), even(self.height / 24), cell)
    }

    /// The timecode strip: its first row and height.
    fn strip(&self) -> (usize, usize) {
        let h = (self.height / 12).max(1);
        (self.height - h, h)
    }

    /// Block `i`'s columns in the strip.
    fn block(&self, i: u32) -> (usize, usize) {
        let bits = TIMECODE_BITS as usize;
        let i = i as usize;
        (i * self.width / bits, (i + 1) * self.width / bits)
    }
}

/// Draws participant `number` (its decimal digits) in white in the top-left quarter.
pub(crate) fn draw_number(layout: &I420, frame: &mut [u8], number: u32) {
    let (x0, y0, cell) = layout.digit_cells();
    let digits = number.to_string();
    for (i, d) in digits.bytes().enumerate() {
        let glyph = &FONT[usize::from(d - b'0')];
        let gx = x0 + i * (GLYPH_W + 1) * cell;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                    let (x, y) = (gx + col * cell, y0 + row * cell);
                    layout.fill(frame, (x, y, x + cell, y + cell), WHITE_Y);
                }
            }
        }
    }
}

/// Draws `value` into the bottom strip, most significant bit left.
pub(crate) fn draw_timecode(layout: &I420, frame: &mut [u8], value: u32) {
    let (top, h) = layout.strip();
    for i in 0..TIMECODE_BITS {
        let bit = value >> (TIMECODE_BITS - 1 - i) & 1;
        let (x0, x1) = layout.block(i);
        let y = if bit == 1 { WHITE_Y } else { BLACK_Y };
        layout.fill(frame, (x0, top, x1, top + h), y);
    }
}

/// Luma at (`x`, `y`) as white (true) or black.
#[cfg(test)]
fn white_at(layout: &I420, luma: &[u8], x: usize, y: usize) -> bool {
    luma.get(y * layout.y_stride + x)
        .is_some_and(|&v| v > THRESHOLD_Y)
}

/// Reads the timecode strip back (block centres); the inverse of [`draw_timecode`].
#[cfg(test)]
fn read_timecode(layout: &I420, luma: &[u8]) -> u32 {
    let (top, h) = layout.strip();
    (0..TIMECODE_BITS).fold(0, |acc, i| {
        let (x0, x1) = layout.block(i);
        (acc << 1) | u32::from(white_at(layout, luma, (x0 + x1) / 2, top + h / 2))
    })
}

/// Reads a one-digit number back (cell centres); `None` when the cells match no glyph.
#[cfg(test)]
fn read_digit(layout: &I420, luma: &[u8]) -> Option<u8> {
    let (x0, y0, cell) = layout.digit_cells();
    let mut seen = [0_u8; GLYPH_H];
    for (row, bits) in seen.iter_mut().enumerate() {
        for col in 0..GLYPH_W {
            let (x, y) = (x0 + col * cell + cell / 2, y0 + row * cell + cell / 2);
            if white_at(layout, luma, x, y) {
                *bits |= 1 << (GLYPH_W - 1 - col);
            }
        }
    }
    FONT.iter()
        .position(|g| *g == seen)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of one colour (luma 81, chroma 90/240: a red).
    fn red_frame(layout: &I420) -> Vec<u8> {
        let mut f = vec![81_u8; layout.size];
        f[layout.u_offset..layout.v_offset].fill(90);
        f[layout.v_offset..].fill(240);
        f
    }

    #[test]
    fn layout_matches_gstreamer_i420() {
        let l = I420::new(320, 180);
        assert_eq!(
            (l.y_stride, l.c_stride, l.size),
            (320, 160, 320 * 180 * 3 / 2)
        );
        let odd = I420::new(30, 17);
        assert_eq!((odd.y_stride, odd.c_stride), (32, 16));
        assert_eq!(odd.u_offset, 32 * 18);
        assert_eq!(odd.size, 32 * 18 + 2 * 16 * 9);
    }

    #[test]
    fn timecode_round_trips_at_every_size() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180), (160, 90), (32, 18)] {
            let l = I420::new(w, h);
            for value in [0, 1, 0x8000_0001, 0xDEAD_BEEF, u32::MAX, 1_234_567_890] {
                let mut f = red_frame(&l);
                draw_timecode(&l, &mut f, value);
                assert_eq!(read_timecode(&l, &f), value, "{w}x{h} {value:#x}");
            }
        }
    }

    #[test]
    fn digits_round_trip_and_leave_the_centre_plain() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180), (160, 90)] {
            let l = I420::new(w, h);
            for n in 0..=9_u8 {
                let mut f = red_frame(&l);
                draw_number(&l, &mut f, u32::from(n));
                draw_timecode(&l, &mut f, 0xFFFF_FFFF);
                assert_eq!(read_digit(&l, &f), Some(n), "{w}x{h} digit {n}");
                let plain = red_frame(&l);
                for y in h / 4..3 * h / 4 {
                    let row = y * l.y_stride;
                    assert_eq!(
                        f[row + w / 4..row + 3 * w / 4],
                        plain[row + w / 4..row + 3 * w / 4]
                    );
                }
                for y in h / 8..3 * h / 8 {
                    for plane in [l.u_offset, l.v_offset] {
                        let row = plane + y * l.c_stride;
                        assert_eq!(
                            f[row + w / 8..row + 3 * w / 8],
                            plain[row + w / 8..row + 3 * w / 8]
                        );
                    }
                }
                let white = f[..l.y_stride * h / 2]
                    .chunks(l.y_stride)
                    .map(|r| r[..w / 2].iter().filter(|v| **v == WHITE_Y).count())
                    .sum::<usize>();
                assert!(white > 0, "drawn in the top-left quarter");
            }
            assert_eq!(read_digit(&l, &red_frame(&l)), None);
        }
    }

    #[test]
    fn drawing_is_white_and_black_with_neutral_chroma() {
        let l = I420::new(64, 36);
        let mut f = red_frame(&l);
        draw_timecode(&l, &mut f, 0x8000_0000);
        let (top, _) = l.strip();
        assert_eq!(f[top * l.y_stride], WHITE_Y, "the first block is the MSB");
        assert_eq!(f[top * l.y_stride + 63], BLACK_Y);
        assert_eq!(f[l.u_offset + (top / 2 + 1) * l.c_stride], NEUTRAL_C);
        let mut short = vec![0_u8; 10];
        draw_timecode(&l, &mut short, 1);
        assert_eq!(short, vec![0; 10], "a buffer too small is left alone");
    }
}
