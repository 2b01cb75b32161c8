"""Lambda functions of Sluice: one package per function, pure logic beside a thin handler."""
