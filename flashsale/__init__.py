"""The operator's tools: the ``flashsale`` command (cli), the local stack it runs (stack), the verification harness."""
