"""The Pico's ``main.py``: the bridge's main loop (flashed by ``vasopilot firmware flash``).

Binary frames share the USB-CDC port with the REPL, so ``micropython.kbd_intr(-1)`` stops a
0x03 byte from raising KeyboardInterrupt. Nothing here feeds the watchdog except
:meth:`Firmware.service`, after its step check: an exception or a hang ends the loop, the
watchdog resets the chip, and the next boot resumes the infusion from the scratch registers.
With GP22 grounded at boot the loop does not start and ``mpremote`` finds the REPL.
"""

import micropython
from machine import Pin

from firmware_bridge.firmware import hal_rp2, logic


def main() -> None:
    if not Pin(hal_rp2.MAINTENANCE_PIN, Pin.IN, Pin.PULL_UP).value():
        return
    micropython.kbd_intr(-1)
    firmware = logic.Firmware(hal_rp2.Rp2Hal())
    while True:
        firmware.service()


main()
