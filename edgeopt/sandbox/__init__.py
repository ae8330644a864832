"""Run code a model file brings (TensorFlow loading, the float reference, conversion, training) in a confined
child: `runner.call` in the parent, `child` (`python -m edgeopt.sandbox.child`) on the other side, `channel`
for the confined code to report progress, open time-limited phases and ask the parent for a service.
"""
