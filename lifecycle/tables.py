"""The core's hot tables for set-based SQL (lifecycle/rows.py): orders, customers, order lines and events."""

from .models import (
    Customer,
    Event,
    Order,
    OrderLine,
)
from .rows import Table

ORDERS, CUSTOMERS, LINES, EVENTS = Table(Order), Table(Customer), Table(OrderLine), Table(Event)
