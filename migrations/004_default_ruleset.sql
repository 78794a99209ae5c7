-- The default manager rule set, published as version 1 (gateway.rules.ruleset.DEFAULT_RULESET).
INSERT INTO rulesets (version, rules, tests, note, created_by, published, published_at)
VALUES (1, $rules$[
  {
    "id": "general",
    "description": "Everything goes to the general queue unless a later rule says otherwise",
    "when": {},
    "then": {
      "action": "route",
      "target": {
        "type": "queue",
        "id": "general"
      }
    }
  },
  {
    "id": "email",
    "description": "Emails go to the email team",
    "when": {
      "channels": [
        "email"
      ]
    },
    "then": {
      "target": {
        "type": "queue",
        "id": "email"
      }
    }
  },
  {
    "id": "web-form",
    "description": "Web forms go to the web team",
    "when": {
      "channels": [
        "web_form"
      ]
    },
    "then": {
      "target": {
        "type": "queue",
        "id": "web"
      }
    }
  },
  {
    "id": "reception",
    "description": "Visits go to reception",
    "when": {
      "channels": [
        "visit"
      ]
    },
    "then": {
      "target": {
        "type": "queue",
        "id": "reception"
      }
    }
  },
  {
    "id": "withheld-phone",
    "description": "Calls from withheld numbers go to the general queue",
    "when": {
      "channels": [
        "phone"
      ],
      "sender": [
        "withheld"
      ]
    },
    "then": {
      "target": {
        "type": "queue",
        "id": "general"
      }
    }
  },
  {
    "id": "caution",
    "description": "Customers with a caution marker go to the caution queue, flagged",
    "when": {
      "kinds": [
        "caution"
      ]
    },
    "then": {
      "target": {
        "type": "queue",
        "id": "caution"
      },
      "flag": true,
      "stop": true
    }
  }
]$rules$::jsonb, $tests$[
  {
    "name": "unknown caller goes to general",
    "contact": {
      "channel": "phone"
    },
    "situation": {
      "sender": "unmatched"
    },
    "expect": {
      "action": "route",
      "target": {
        "type": "queue",
        "id": "general"
      }
    }
  },
  {
    "name": "email goes to the email queue",
    "contact": {
      "channel": "email"
    },
    "situation": {
      "sender": "unmatched"
    },
    "expect": {
      "action": "route",
      "target": {
        "type": "queue",
        "id": "email"
      }
    }
  },
  {
    "name": "caution marker goes to the caution queue",
    "contact": {
      "channel": "phone"
    },
    "situation": {
      "restrictions": [
        {
          "params": {
            "kind": "caution",
            "note": "Threatened staff"
          }
        }
      ]
    },
    "expect": {
      "action": "route",
      "target": {
        "type": "queue",
        "id": "caution"
      },
      "flagged": true
    }
  },
  {
    "name": "written-only caller is deflected",
    "contact": {
      "channel": "phone"
    },
    "situation": {
      "restrictions": [
        {
          "params": {
            "kind": "written_only"
          }
        }
      ]
    },
    "expect": {
      "action": "deflect"
    }
  }
]$tests$::jsonb,
        'Default routing shipped with the gateway', 'migration', true, now());
SELECT setval(pg_get_serial_sequence('rulesets', 'version'), 1);
