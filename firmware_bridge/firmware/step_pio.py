"""The PIO programs of the bridge, as opcodes (RP2040 datasheet §3.4), importable anywhere.

``hal_rp2`` writes the same programs with MicroPython's ``@rp2.asm_pio`` and, at boot, refuses
to step unless they assembled to exactly these words; on the host,
``tests/test_bridge_pio.py`` runs these words cycle by cycle in ``rp2040-pio-emulator``.

STEP (one state machine, 1 MHz, one SET pin):

    0  pull noblock        ; OSR <- next period, or X (the last one) if the FIFO is empty
    1  mov x, osr          ; X keeps it for that case
    2  mov y, x
    3  jmp y--, 3          ; y + 1 cycles
    4  set pins, 1 [2]     ; STEP high for 3 cycles
    5  set pins, 0         ; STEP low, then wrap to 0

A period is ``y + OVERHEAD_CYCLES`` cycles and STEP rises ``EDGE_BEFORE_END`` cycles before its
end: the firmware pushes ``period - 8`` so the instructions around the delay loop are counted
(a stepper program that ignores them runs fast at high rates).

COUNT (a second state machine, on the STEP pin as its input): every rising edge decrements X
from all ones and pushes ``~X``, the number of edges so far, so steps are counted in hardware.

    0  mov x, ~null
    1  wait 1 pin 0
    2  wait 0 pin 0
    3  jmp x--, 4
    4  mov isr, ~x
    5  push noblock
    6  jmp 1
"""

OVERHEAD_CYCLES = 8
EDGE_BEFORE_END = 4
PULSE_CYCLES = 3


def _jmp(condition: int, address: int) -> int:
    return (condition << 5) | address


def _mov(destination: int, op: int, source: int) -> int:
    return 0xA000 | (destination << 5) | (op << 3) | source


def _set_pins(value: int, delay: int) -> int:
    return 0xE000 | (delay << 8) | value


def _wait_pin(polarity: int, index: int) -> int:
    return 0x2000 | (polarity << 7) | (1 << 5) | index


JMP_X_DEC = 2
JMP_Y_DEC = 4
MOV_X = 1
MOV_Y = 2
MOV_ISR = 6
MOV_OSR = 7
MOV_NULL = 3
MOV_INVERT = 1
PULL_NOBLOCK = 0x8080
PUSH_NOBLOCK = 0x8000

STEP_PROGRAM = (
    PULL_NOBLOCK,
    _mov(MOV_X, 0, MOV_OSR),
    _mov(MOV_Y, 0, MOV_X),
    _jmp(JMP_Y_DEC, 3),
    _set_pins(1, PULSE_CYCLES - 1),
    _set_pins(0, 0),
)

COUNT_PROGRAM = (
    _mov(MOV_X, MOV_INVERT, MOV_NULL),
    _wait_pin(1, 0),
    _wait_pin(0, 0),
    _jmp(JMP_X_DEC, 4),
    _mov(MOV_ISR, MOV_INVERT, MOV_X),
    PUSH_NOBLOCK,
    _jmp(0, 1),
)


def period_cycles(y: int) -> int:
    """Cycles from one pull to the next for a pushed delay count ``y``."""
    return y + OVERHEAD_CYCLES
