"""CRM mapping files and their loader, validator and planner. Arrives with the Salesforce writer (issue 3)."""
