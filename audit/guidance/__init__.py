"""Classifier-free guidance weight schedules w(p) (paper convention; see ``schedules``)."""

from audit.guidance.schedules import HEURISTICS, SHAPES, GuidanceSchedule, get_schedule

__all__ = ["HEURISTICS", "SHAPES", "GuidanceSchedule", "get_schedule"]
