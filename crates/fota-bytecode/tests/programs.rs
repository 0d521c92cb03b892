//! The assembler, the image check and the interpreter, through their public API.

use fota_bytecode::image::{self, HEADER_LEN, ImageError};
use fota_bytecode::{Check, Fault, Host, Machine, State, Verdict, assemble, dry_run, samples};

/// A device for the interpreter: a clock the test moves, printed lines, checks that
/// pass unless listed.
#[derive(Default)]
struct Bench {
    image: Vec<u8>,
    now: u32,
    lines: Vec<String>,
    accepted: u32,
    failing: Vec<Check>,
}

impl Host for Bench {
    fn fetch(&mut self, offset: u32, buf: &mut [u8]) -> bool {
        fota_bytecode::Source::read(&mut &self.image[..], offset, buf)
    }
    fn now_ms(&mut self) -> u32 {
        self.now
    }
    fn print(&mut self, parts: &[&[u8]]) {
        let line: Vec<u8> = parts.concat();
        self.lines.push(String::from_utf8(line).unwrap());
    }
    fn accept(&mut self) -> bool {
        self.accepted += 1;
        true
    }
    fn check(&mut self, what: Check, _: u32) -> bool {
        !self.failing.contains(&what)
    }
}

fn machine(img: &[u8]) -> Machine {
    let mut src = img;
    Machine::new(image::check(&mut src, img.len() as u32).expect("a valid program"))
}

#[test]
fn samples_do_what_their_names_say() {
    let v = |src: &str| dry_run(&assemble(src).unwrap(), 60_000);
    assert!(matches!(v(samples::BLINK_V1), Verdict::Accepts { after_ms } if after_ms >= 20));
    assert!(v(samples::BLINK_V2).accepts());
    assert_eq!(v(samples::BLINK_V3_BROKEN), Verdict::Hangs);
    assert_eq!(v(samples::BLINK_V4_FAILING), Verdict::Fails(Fault::Code(7)));
}

#[test]
fn header_carries_name_version_and_length() {
    let img = assemble(samples::BLINK_V2).unwrap();
    let mut src = &img[..];
    let h = image::check(&mut src, 256 * 1024).unwrap();
    assert_eq!((h.name(), h.version()), ("blink", "2"));
    assert_eq!(h.image_len(), img.len() as u64);
    assert!(img.len() > 16 * 1024, "the sample carries its data");
    // A slot holds the image followed by erased flash: still the same program.
    let mut slot = img.clone();
    slot.resize(64 * 1024, 0xFF);
    let mut src = &slot[..];
    assert_eq!(image::check(&mut src, 64 * 1024).unwrap(), h);
}

#[test]
fn damaged_torn_erased_and_oversized_images_are_refused() {
    let img = assemble(samples::BLINK_V2).unwrap();
    let check = |bytes: &[u8], max: u32| {
        let mut src = bytes;
        image::check(&mut src, max)
    };
    for at in [5, 9, 14, 20, 40, HEADER_LEN, img.len() / 2, img.len() - 1] {
        let mut bad = img.clone();
        bad[at] ^= 0x10;
        let e = check(&bad, 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::Damaged
                    | ImageError::UnknownFormat(_)
                    | ImageError::TooLong(_)
                    | ImageError::Unreadable
            ),
            "byte {at}: {e:?}"
        );
    }
    // Half written, the rest erased.
    let mut torn = vec![0xFF; img.len()];
    torn[..img.len() / 2].copy_from_slice(&img[..img.len() / 2]);
    assert_eq!(check(&torn, 1 << 20), Err(ImageError::Damaged));
    assert_eq!(check(&[0xFF; 4096], 4096), Err(ImageError::NotAProgram));
    assert_eq!(
        check(&img[..img.len() - 1], 1 << 20),
        Err(ImageError::Unreadable)
    );
    assert_eq!(
        check(&img, img.len() as u32 - 1),
        Err(ImageError::TooLong(img.len() as u32 - HEADER_LEN as u32))
    );
}

#[test]
fn healthy_of_size_makes_the_size_asked_for() {
    for size in [4096, 64 * 1024, 100_000] {
        let img = assemble(&samples::healthy_of_size("7", size)).unwrap();
        assert_eq!(img.len(), size);
        assert!(dry_run(&img, 10_000).accepts());
    }
}

#[test]
fn runs_a_bounded_number_of_instructions_per_step() {
    let img = assemble("spin: jump spin").unwrap();
    let mut m = machine(&img);
    let mut host = Bench {
        image: img.clone(),
        ..Bench::default()
    };
    assert_eq!(m.step(&mut host, 100), State::Running);
    assert_eq!(m.pc(), 0);
}

#[test]
fn sleeps_ticks_and_loops_on_the_clock() {
    let img = assemble(
        "name \"t\"\nversion \"9\"\n count 2\nagain: tick\n sleep 100\n loop again\n print \"done\"\n end",
    )
    .unwrap();
    let mut m = machine(&img);
    let mut host = Bench {
        image: img.clone(),
        ..Bench::default()
    };
    assert_eq!(m.step(&mut host, 50), State::Sleeping(100));
    assert_eq!(host.lines, ["t 9: tick 1"]);
    host.now = 99;
    assert_eq!(m.step(&mut host, 50), State::Sleeping(100));
    assert_eq!(m.idle_for(99), Some(1));
    host.now = 100;
    assert_eq!(m.step(&mut host, 50), State::Sleeping(200));
    host.now = 250;
    assert_eq!(m.step(&mut host, 50), State::Ended);
    assert_eq!(host.lines, ["t 9: tick 1", "t 9: tick 2", "done"]);
    assert_eq!(m.idle_for(250), None);
}

#[test]
fn a_failed_check_fails_the_program_before_accept() {
    let img = assemble(samples::BLINK_V2).unwrap();
    let mut m = machine(&img);
    let mut host = Bench {
        image: img.clone(),
        failing: vec![Check::Ram],
        ..Bench::default()
    };
    assert!(matches!(m.step(&mut host, 100), State::Sleeping(_)));
    host.now = 30;
    assert_eq!(
        m.step(&mut host, 100),
        State::Failed(Fault::Check(Check::Ram))
    );
    assert_eq!(host.accepted, 0);
}

#[test]
fn check_clock_fails_when_time_does_not_pass() {
    let img = assemble("check clock\naccept\nend").unwrap();
    let mut m = machine(&img);
    let mut host = Bench {
        image: img.clone(),
        ..Bench::default()
    };
    assert_eq!(
        m.step(&mut host, 10),
        State::Failed(Fault::Check(Check::Clock))
    );
}

#[test]
fn assembler_errors_name_the_line_and_the_fix() {
    let cases: [(&str, usize, &str); 8] = [
        ("print \"a\"\nprnt \"b\"", 2, "unknown instruction `prnt`"),
        ("jump nowhere", 1, "label `nowhere` is not defined"),
        ("a: tick\na: tick", 2, "defined twice"),
        ("print \"tab\there\"", 1, "printable ASCII"),
        ("sleep soon", 1, "not a number"),
        ("check temperature", 1, "unknown check `temperature`"),
        ("fail 300", 1, "above 255"),
        ("tick now", 1, "takes no argument"),
    ];
    for (src, line, text) in cases {
        let e = assemble(src).unwrap_err();
        assert_eq!(e.line, line, "{src}: {e}");
        assert!(e.message.contains(text), "{src}: {e}");
    }
    assert!(
        assemble("; nothing\n")
            .unwrap_err()
            .message
            .contains("no instructions")
    );
}

#[test]
fn comments_and_escapes() {
    let img = assemble("print \"a;b \\\"q\\\"\" ; a comment\nend").unwrap();
    let mut m = machine(&img);
    let mut host = Bench {
        image: img.clone(),
        ..Bench::default()
    };
    m.step(&mut host, 10);
    assert_eq!(host.lines, ["a;b \"q\""]);
}

proptest::proptest! {
    /// Any bytes behind a valid header: the interpreter never panics and never leaves the
    /// code.
    #[test]
    fn random_code_never_panics(code in proptest::collection::vec(proptest::num::u8::ANY, 1..600)) {
        let img = image::build("x", "1", &code).unwrap();
        let mut m = machine(&img);
        let mut host = Bench { image: img.clone(), ..Bench::default() };
                for t in 0..20 {
            host.now = t * 1000;
            m.step(&mut host, 200);
            proptest::prop_assert!(m.pc() <= code.len() as u32);
        }
    }
}
