"""The stream workers: one faust app, one sub-package per business area."""
