"""Pure decision logic: restriction kinds, manager rule sets, schedules. No I/O, no clock reads."""
