"""The test shop the agent tests talk about: its knowledge-base documents and the system
prompt the agent is configured with."""

# ruff: noqa: RUF001  (Russian test documents)

DOCUMENTS = {
    "delivery.ru.md": (
        "# Доставка\n\nКурьерская доставка по Москве занимает 1–2 дня и стоит 350 рублей.\n\n"
        "## Самовывоз\n\nЗаказ можно забрать бесплатно в магазине на улице Садовой.\n"
    ),
    "payment.ru.md": (
        "# Способы\n\nВы можете оплатить заказ картой МИР или наличными курьеру. "
        "Ёлочные игрушки продаются только по предоплате.\n"
    ),
    "returns.en.md": (
        "# Returns\n\nUnused items can be returned within 14 days. Refunds are paid to the "
        "original card within 10 days.\n"
    ),
}

SYSTEM = "You are the test shop assistant."
