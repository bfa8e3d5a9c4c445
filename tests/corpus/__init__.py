"""Mails of the kinds services send, for the code and magic-link extraction tests.

Each :class:`Mail` is built into real MIME (plain, HTML-only or multipart; quoted-printable,
base64 or 8bit) by :func:`build`, so the extraction is tested through the parser, as a test
would meet it. ``code`` is what :attr:`Message.verification_code` must give (``None``: no code),
``link`` what :attr:`Message.magic_link` must give (``None``: no call to action).

:data:`CORPUS` is what the rules were written against. :data:`HELD_OUT` was written afterwards,
in other words and layouts, and run once before any rule was changed (see tests/test_extract.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


@dataclass(frozen=True)
class Mail:
    name: str
    subject: str
    text: str | None = None
    html: str | None = None
    cte: str = "quoted-printable"
    code: str | None = None
    link: str | None = None
    sender: str = "no-reply@service.example"


def build(mail: Mail, to: str = "user@example.com") -> bytes:
    """The mail as the bytes a service would send."""
    msg = EmailMessage()
    msg["From"] = mail.sender
    msg["To"] = to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="service.example")
    if mail.text is not None:
        msg.set_content(mail.text, cte=mail.cte)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html", cte=mail.cte)
    elif mail.html is not None:
        msg.set_content(mail.html, subtype="html", cte=mail.cte)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _button(url: str, label: str) -> str:
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0"><tr>'
        '<td align="center" bgcolor="#1a73e8" style="border-radius:6px">'
        f'<a href="{url}" style="display:inline-block;padding:12px 24px;color:#fff;'
        f'text-decoration:none;font-weight:bold">{label}</a></td></tr></table>'
    )


def _page(body: str, brand: str = "Acme") -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{brand}</title><style>.x{{color:#333}} @media (max-width:600px){{td{{padding:0}}}}"
        "</style></head><body style='margin:0'>"
        '<div style="display:none;max-height:0;overflow:hidden">&nbsp;&zwnj;</div>'
        f'<a href="https://www.{brand.lower()}.example/"><img src="https://cdn.{brand.lower()}.'
        f'example/logo.png" alt="{brand}" width="120"></a>'
        f"<table width='100%'><tr><td class='x'>{body}</td></tr></table>"
        f"<p style='font-size:11px;color:#999'>© 2024 {brand} Inc., 548 Market St #12345, "
        "San Francisco, CA 94104<br>"
        f'<a href="https://www.{brand.lower()}.example/privacy">Privacy</a> · '
        f'<a href="https://www.{brand.lower()}.example/unsubscribe?u=8f3a9c2e71b04d5f9a1c">'
        "Unsubscribe</a> · "
        '<a href="https://twitter.com/acme">Twitter</a></p>'
        '<img src="https://t.acme.example/open.gif?id=77812093" width="1" height="1" alt="">'
        "</body></html>"
    )


T = "https://app.acme.example"

CORPUS: list[Mail] = [
    # --- sign-up / email verification -------------------------------------------------------
    Mail(
        "signup-en-multipart",
        "Verify your email address",
        text="Hi Sam,\n\nThanks for signing up for Acme!\n\nYour verification code is 482913.\n\n"
        f"Or confirm your address with this link:\n{T}/verify?token=9f8e7d6c5b4a39281706f5e4\n\n"
        "This code expires in 15 minutes.\n\n— The Acme team\n548 Market St, San Francisco "
        "CA 94104\n",
        html=_page(
            "<h1>Welcome to Acme</h1><p>Your verification code is</p>"
            '<p style="font-size:32px;letter-spacing:6px"><b>482913</b></p>'
            + _button(f"{T}/verify?token=9f8e7d6c5b4a39281706f5e4", "Verify email")
            + "<p>This code expires in 15 minutes.</p>"
        ),
        code="482913",
        link=f"{T}/verify?token=9f8e7d6c5b4a39281706f5e4",
    ),
    Mail(
        "signup-link-only-html",
        "Confirm your account",
        html=_page(
            "<p>Hello! Please confirm your account by clicking the button below.</p>"
            + _button(f"{T}/account/confirm/eyJ1aWQiOjQyfQ.Xy12ab34Cd56", "Confirm my account")
            + "<p>If you didn't create an account, you can ignore this email.</p>"
        ),
        cte="base64",
        link=f"{T}/account/confirm/eyJ1aWQiOjQyfQ.Xy12ab34Cd56",
    ),
    Mail(
        "signup-plain-code-on-own-line",
        "Your Acme code",
        text="Welcome!\n\nEnter the following code to finish creating your account:\n\n"
        "    731 604\n\nIf you did not sign up, please ignore this message.\n",
        cte="7bit",
        code="731 604",
    ),
    Mail(
        "signup-alnum",
        "Activate your workspace",
        text="Your activation code: A7K-9QZ\n\nPaste it in the window where you started signing "
        "up.\n\nActivate in the browser instead: https://work.example/activate?c=A7K9QZ&s=f0e1d2"
        "c3b4a59687\n",
        cte="quoted-printable",
        code="A7K-9QZ",
        link="https://work.example/activate?c=A7K9QZ&s=f0e1d2c3b4a59687",
    ),
    Mail(
        "signup-subject-code",
        "918273 is your Acme verification code",
        text="Use it to verify your email. It expires in 10 minutes.\n",
        code="918273",
    ),
    Mail(
        "signup-google-style",
        "G-552019 is your Google verification code",
        text="G-552019 is your Google verification code.\n",
        code="552019",
    ),
    # --- password reset ------------------------------------------------------------------------
    Mail(
        "reset-link-multipart",
        "Reset your password",
        text="Someone asked to reset the password for your Acme account.\n\nReset your password: "
        f"{T}/password/reset?token=Qm9iIFNtaXRoIDIwMjQtMTEtMDk2\n\nIf it wasn't you, ignore "
        "this mail. The link is valid for 60 minutes.\nAcme Support: https://help.acme.example\n",
        html=_page(
            "<p>Someone asked to reset the password for your Acme account.</p>"
            + _button(f"{T}/password/reset?token=Qm9iIFNtaXRoIDIwMjQtMTEtMDk2", "Reset password")
            + '<p>Need help? <a href="https://help.acme.example">Contact support</a></p>'
        ),
        link=f"{T}/password/reset?token=Qm9iIFNtaXRoIDIwMjQtMTEtMDk2",
    ),
    Mail(
        "reset-code-de",
        "Passwort zurücksetzen",
        text="Hallo Jana,\n\nIhr Bestätigungscode lautet: 660142\n\nDer Code ist 30 Minuten "
        "gültig. Wenn Sie das nicht waren, ändern Sie bitte Ihr Passwort.\n\nIhr Acme-Team\n"
        "Acme GmbH, Friedrichstraße 123, 10117 Berlin\n",
        cte="quoted-printable",
        code="660142",
    ),
    Mail(
        "reset-fr-html-b64",
        "Réinitialisation de votre mot de passe",
        html=_page(
            "<p>Bonjour,</p><p>Votre code de vérification est : <strong>305 781</strong></p>"
            + _button(f"{T}/fr/reinitialiser?jeton=b7c6d5e4f3a2918273645546", "Réinitialiser")
            + "<p>Ce code expire dans 20 minutes.</p>"
        ),
        cte="base64",
        code="305 781",
        link=f"{T}/fr/reinitialiser?jeton=b7c6d5e4f3a2918273645546",
    ),
    Mail(
        "reset-es",
        "Restablece tu contraseña",
        text="Hola,\n\nTu código de verificación es 774120.\n\nPara restablecer tu contraseña "
        "también puedes usar este enlace:\nhttps://cuenta.ejemplo.es/restablecer?t=aa91bb82cc73dd64"
        "\n\nGracias,\nEl equipo\n",
        code="774120",
        link="https://cuenta.ejemplo.es/restablecer?t=aa91bb82cc73dd64",
    ),
    # --- two-factor / sign-in codes -------------------------------------------------------------
    Mail(
        "2fa-en-short",
        "Your login code",
        text="Your Acme login code is 3391. Don't share it with anyone.\n",
        cte="7bit",
        code="3391",
    ),
    Mail(
        "2fa-otp-upper",
        "Security alert: sign-in attempt",
        text="We noticed a sign-in attempt from Chrome on Windows (Berlin, Germany) on "
        "12/03/2024 at 14:32.\n\nOTP: 84736251\n\nIf this wasn't you, secure your account.\n",
        code="84736251",
    ),
    Mail(
        "2fa-pt",
        "Seu código de acesso",
        text="Olá!\n\nSeu código de verificação é 209 334.\nEle expira em 5 minutos.\n\nEquipe "
        "Acme\n",
        cte="base64",
        code="209 334",
    ),
    Mail(
        "2fa-it",
        "Il tuo codice di accesso",
        text="Ciao,\nil tuo codice di verifica è 590017.\nNon condividerlo con nessuno.\n",
        code="590017",
    ),
    Mail(
        "2fa-nl",
        "Je verificatiecode",
        text="Hallo,\n\nJe verificatiecode is 118263. Deze code is 10 minuten geldig.\n\n"
        "Groeten,\nHet Acme-team\nPostbus 1234, 1000 AB Amsterdam\n",
        code="118263",
    ),
    Mail(
        "2fa-ja",
        "【Acme】認証コードのお知らせ",
        text="Acmeをご利用いただきありがとうございます。\n\n認証コード：482916\n\n"
        "このコードの有効期限は10分です。\n",
        cte="base64",
        code="482916",
    ),
    Mail(
        "2fa-zh",
        "您的验证码",
        text="【Acme】您的验证码是 730194，5分钟内有效。请勿泄露给他人。\n",
        cte="base64",
        code="730194",
    ),
    Mail(
        "2fa-digit-cells-html",
        "Your one-time passcode",
        html=_page(
            "<p>Here is your one-time passcode:</p><table><tr>"
            + "".join(
                f'<td style="border:1px solid #ccc;padding:8px;font-size:24px">{d}</td>'
                for d in "640193"
            )
            + "</tr></table><p>It expires in 10 minutes.</p>"
        ),
        cte="quoted-printable",
        code="6 4 0 1 9 3",
    ),
    Mail(
        "2fa-after-phrase-de",
        "Anmeldung",
        text="448021 ist Ihr Sicherheitscode für Acme. Geben Sie ihn niemals weiter.\n",
        code="448021",
    ),
    # --- magic sign-in --------------------------------------------------------------------------
    Mail(
        "magic-signin-slack-style",
        "Your sign-in link",
        text="Click the link below to sign in to Acme. It expires in 24 hours and can only be "
        f"used once.\n\n{T}/magic/sign-in?t=ZXhhbXBsZS1tYWdpYy10b2tlbi0xMjM0\n\nOr use this "
        "code: 7W4-QX2\n",
        html=_page(
            "<p>Click the button below to sign in to Acme. It expires in 24 hours.</p>"
            + _button(f"{T}/magic/sign-in?t=ZXhhbXBsZS1tYWdpYy10b2tlbi0xMjM0", "Sign in to Acme")
            + "<p>Or use this code: <b>7W4-QX2</b></p>"
        ),
        code="7W4-QX2",
        link=f"{T}/magic/sign-in?t=ZXhhbXBsZS1tYWdpYy10b2tlbi0xMjM0",
    ),
    Mail(
        "magic-login-plain",
        "Log in to Notebook",
        text="Hi,\n\nUse this link to log in: https://notebook.example/login/callback?key="
        "c2VjcmV0LWtleS0wMDAxMjM0NTY3\n\nThis link expires in 15 minutes.\n\nManage your email "
        "preferences: https://notebook.example/settings/preferences\n",
        cte="7bit",
        link="https://notebook.example/login/callback?key=c2VjcmV0LWtleS0wMDAxMjM0NTY3",
    ),
    Mail(
        "magic-de-html",
        "Ihr Anmeldelink",
        html=_page(
            "<p>Hallo, klicken Sie auf die Schaltfläche, um sich anzumelden.</p>"
            + _button("https://konto.example.de/auth/link/8d7c6b5a49382716", "Jetzt anmelden")
        ),
        cte="quoted-printable",
        link="https://konto.example.de/auth/link/8d7c6b5a49382716",
    ),
    # --- invitations ----------------------------------------------------------------------------
    Mail(
        "invite-team",
        "Alex invited you to join the Design team on Acme",
        text="Alex Kim (alex@corp.example) invited you to the Design team.\n\nAccept the "
        f"invitation: {T}/invitations/accept/4f9d2a7c1e8b6053\n\n12 people are already there.\n",
        html=_page(
            "<p><b>Alex Kim</b> invited you to the Design team. 12 people are already there.</p>"
            + _button(f"{T}/invitations/accept/4f9d2a7c1e8b6053", "Accept invitation")
            + f'<p><a href="{T}/teams/design">View team</a></p>'
        ),
        link=f"{T}/invitations/accept/4f9d2a7c1e8b6053",
    ),
    Mail(
        "invite-fr",
        "Vous êtes invité à rejoindre le projet",
        html=_page(
            "<p>Marie vous invite à rejoindre le projet « Lancement 2025 ».</p>"
            + _button(f"{T}/invitation/accepter?id=7788aa99bb00cc11dd22", "Accepter l'invitation")
        ),
        cte="base64",
        link=f"{T}/invitation/accepter?id=7788aa99bb00cc11dd22",
    ),
    # --- negatives: numbers that are not codes -------------------------------------------------
    Mail(
        "receipt-order",
        "Your order #104729 has shipped",
        text="Thanks for your order!\n\nOrder number: 104729\nOrder date: 2024-11-03\nItems: 2\n"
        "Total: $1,249.99\n\nTracking number: 1Z999AA10123456784\nCarrier: UPS, est. delivery "
        "11/08/2024 by 8:00 PM\n\nQuestions? Call 1-800-555-0199.\n\nAcme Store, 548 Market St, "
        "San Francisco, CA 94104\n",
        html=_page(
            "<h2>Order #104729</h2><table><tr><td>Wireless Headphones</td><td>1</td>"
            "<td>$249.99</td></tr><tr><td>Laptop Stand</td><td>1</td><td>$1,000.00</td></tr>"
            "</table><p>Total: <b>$1,249.99</b></p>"
            '<p><a href="https://store.acme.example/orders/104729">View your order</a></p>'
        ),
    ),
    Mail(
        "receipt-promo-code",
        "Receipt from Acme Coffee",
        text="Receipt #2024-88172\n\n2 x Latte         $9.50\n1 x Croissant     $3.25\nTotal    "
        "        $12.75\n\nUse promo code SAVE2024 on your next visit for 20% off!\nStore 0441, "
        "open 7:00-19:00\n",
        cte="7bit",
    ),
    Mail(
        "newsletter-en",
        "The Weekly: 5 things we shipped in 2024",
        html=_page(
            "<h1>The Weekly</h1><p>In 2024 we shipped 1,250 features and served 30000 customers."
            "</p><p>Join our webinar on 12 March 2025 at 15:00 CET.</p>"
            '<p><a href="https://blog.acme.example/2024/recap">Read more</a></p>'
            '<p><a href="https://blog.acme.example/authors/jane-doe">About the author</a></p>'
        ),
        cte="quoted-printable",
    ),
    Mail(
        "newsletter-de-discount",
        "Nur heute: 20 % Rabatt",
        text="Hallo!\n\nMit dem Rabattcode HERBST24 sparen Sie heute 20 %. Gültig bis "
        "30.11.2024.\nUnsere Hotline: 030 1234567\n\nAbmelden: https://shop.example.de/abmelden"
        "?u=12345678\n",
    ),
    Mail(
        "shipping-tracking-fr",
        "Votre colis est en route",
        text="Bonjour,\n\nVotre commande n° 558812 a été expédiée.\nNuméro de suivi : "
        "6A12345678901\nCode postal de livraison : 75011\nLivraison prévue le 14/11/2024.\n",
    ),
    Mail(
        "invoice-es",
        "Factura 2024-0193",
        text="Adjuntamos la factura 2024-0193 por importe de 1.250,00 EUR.\nCódigo postal: 28013\n"
        "Código de descuento para su próxima compra: VERANO25\nTeléfono: +34 912 345 678\n",
        cte="quoted-printable",
    ),
    Mail(
        "appointment-reminder",
        "Reminder: appointment on Tuesday",
        text="Your appointment with Dr. Lee is on Tuesday 14 January 2025 at 10:30.\nRoom 2104, "
        "Building C. Booking reference: 88213.\nTo reschedule, call (415) 555-2671.\n",
        cte="7bit",
    ),
    Mail(
        "flight-booking",
        "Your booking confirmation",
        text="Booking confirmation code: K7XQ2M\nFlight LH 2041 departs 07:55 from gate B42 on "
        "2025-02-03.\nSeat 23C. Ticket number 220 1234567890.\n",
    ),
    Mail(
        "bank-statement",
        "Your November statement is ready",
        text="Your statement for account ending 4821 is ready.\nBalance: 12,406.55 USD\nMinimum "
        "payment due 2024-12-15: 250.00 USD\nView it: https://bank.example/statements/202411\n",
    ),
    Mail(
        "zip-and-area-code",
        "Update your shipping address",
        text="We could not verify the ZIP code 94107 for your address. Area code 415 is not valid "
        "for this number.\n",
    ),
    Mail(
        "error-code-alert",
        "Build failed",
        text="Build #48213 failed with error code 1073 after 2048 seconds.\nCommit 9f8e7d6 by "
        "sam.\n",
    ),
    Mail(
        "github-style-review",
        "Re: [acme/api] Fix rate limiter (PR #4821)",
        text="@sam approved these changes. Merging 4821 in 3 minutes.\n\n"
        "— Reply to this email directly, view it on GitHub: https://github.com/acme/api/pull/4821"
        "\nYou are receiving this because you were mentioned.\n",
    ),
    Mail(
        "social-notification",
        "You have 12 new followers",
        html=_page(
            "<p>12 people followed you this week. 1,024 followers in total!</p>"
            '<p><a href="https://social.example/notifications">See notifications</a></p>'
        ),
    ),
    Mail(
        "quantity-and-sku",
        "Restock alert",
        text="Item SKU 100234 is back in stock: 2500 units available at $19.99.\n",
    ),
    Mail(
        "two-different-codes",
        "Your codes",
        text="Your verification code is 111222.\nYour backup verification code is 333444.\n",
    ),
    Mail(
        "code-then-phone",
        "Your login code",
        text="Your login code is 902211.\nIf you did not request this code, call 555 1234 "
        "right away.\n",
        code="902211",
    ),
    Mail(
        "welcome-no-action",
        "Welcome to Acme",
        html=_page(
            "<h1>Welcome!</h1><p>We're glad you're here. Read our guide to learn more.</p>"
            '<p><a href="https://docs.acme.example/guide">Read the guide</a></p>'
        ),
    ),
]

HELD_OUT: list[Mail] = [
    Mail(
        "h-heres-the-code",
        "Finish signing in",
        text="Hey there,\n\nHere's the code you asked for: 552 019\n\nType it into the app to "
        "finish signing in.\n",
        code="552 019",
    ),
    Mail(
        "h-passcode-dash",
        "Passcode",
        text="Passcode — 88231\n\nValid for one use only.\n",
        code="88231",
    ),
    Mail(
        "h-your-pin",
        "Card activation",
        text="Your PIN is 0742. Keep it safe.\n",
        code="0742",
    ),
    Mail(
        "h-html-heading-code",
        "Confirm it's you",
        html=_page(
            "<h2>Confirm it's you</h2><p>To continue, enter this security code:</p>"
            "<h1 style='letter-spacing:8px'>MX4P7T</h1>"
        ),
        cte="base64",
        code="MX4P7T",
    ),
    Mail(
        "h-de-einmalcode",
        "Ihr Einmalcode",
        text="Guten Tag,\nbitte verwenden Sie den folgenden Einmalcode, um fortzufahren:\n\n"
        "  5 0 2 7 1 9\n\nViele Grüße\n",
        code="5 0 2 7 1 9",
    ),
    Mail(
        "h-es-after",
        "Código",
        text="209871 es tu código de Acme. No lo compartas.\n",
        code="209871",
    ),
    Mail(
        "h-pt-br-login",
        "Código de login",
        html=_page("<p>Use o código de login abaixo para entrar:</p><p><b>771 204</b></p>"),
        cte="quoted-printable",
        code="771 204",
    ),
    Mail(
        "h-nl-inlog",
        "Inloggen",
        text="Gebruik inlogcode 4410-9921 om in te loggen.\n",
        code="4410-9921",
    ),
    Mail(
        "h-ja-kakunin",
        "確認コード",
        text="確認コードは 603318 です。\n",
        cte="base64",
        code="603318",
    ),
    Mail(
        "h-zh-tw",
        "驗證碼通知",
        text="您的驗證碼為：447120，請於10分鐘內輸入。\n",
        cte="base64",
        code="447120",
    ),
    Mail(
        "h-receipt-with-code-word",
        "Your receipt",
        text="Receipt 2024-11-03\nGift card code: GC7Q-PX91\nTotal: 45.00 EUR\nStore code 4410\n",
    ),
    Mail(
        "h-tracking",
        "Shipment update",
        text="Tracking code: 00340434161094042557\nYour parcel arrives on 2024-11-15 between "
        "10:00 and 14:00.\n",
    ),
    Mail(
        "h-calendar",
        "Invitation: Planning @ Mon 2025-01-13 09:30",
        text="Planning meeting\nMonday 13 January 2025, 09:30 – 10:30 (CET)\nDial-in: +49 30 "
        "5678 1234, PIN-free\nMeeting ID 8812 3344 5566\n",
    ),
    Mail(
        "h-magic-nl",
        "Log in bij Acme",
        html=_page(
            "<p>Klik op de knop om in te loggen.</p>"
            + _button("https://acme.example.nl/inloggen?token=aa11bb22cc33dd44ee55", "Inloggen")
        ),
        link="https://acme.example.nl/inloggen?token=aa11bb22cc33dd44ee55",
    ),
    Mail(
        "h-verify-it",
        "Verifica il tuo indirizzo email",
        html=_page(
            "<p>Grazie per esserti registrato.</p>"
            + _button("https://app.example.it/conferma-email/5c4b3a2918f7e6d5", "Conferma email")
        ),
        cte="base64",
        link="https://app.example.it/conferma-email/5c4b3a2918f7e6d5",
    ),
    Mail(
        "h-newsletter-login-header",
        "This month at Acme",
        html=_page(
            "<p>Our spring collection is here, with 150 new styles from $29.</p>"
            '<p><a href="https://shop.acme.example/spring">Shop now</a></p>'
        ),
    ),
]

# A second held-out batch, written later still, in the style of real services' mails, and run
# once before any rule changed (tests/test_extract.py records what it found then).
HELD_OUT_2: list[Mail] = [
    Mail(
        "h2-apple-id",
        "Your Apple ID Code",
        text="Your Apple ID Code is: 318406. Don't share it with anyone.\n",
        code="318406",
    ),
    Mail(
        "h2-stripe-dash",
        "Your Stripe verification code",
        html=_page("<p>Your Stripe verification code is:</p><h2>123-456</h2>", "Stripe"),
        cte="base64",
        code="123-456",
    ),
    Mail(
        "h2-otp-parenthesis",
        "One-time password",
        text="Your one-time password (OTP) is 554120. It is valid for 3 minutes.\n",
        code="554120",
    ),
    Mail(
        "h2-whatsapp",
        "WhatsApp code",
        text="Your WhatsApp code: 123-456\nYou can also tap on this link to verify your phone: "
        "https://v.whatsapp.example/123456\nDon't share this code with others\n",
        code="123-456",
        # labelled None at first; the rule was right: tapping it verifies the phone
        link="https://v.whatsapp.example/123456",
    ),
    Mail(
        "h2-bank-payment",
        "Approve your payment",
        text="Never share this code. Your code for payment of EUR 45.00 to ACME is 881234.\n",
        code="881234",
    ),
    Mail(
        "h2-welcome-promo",
        "Welcome! Here's 10% off",
        html=_page("<p>Thanks for joining. Use code WELCOME10 for 10% off your first order.</p>"),
    ),
    Mail(
        "h2-ticket",
        "Your tickets",
        text="Ticket code: 8812-2231-9910\nDoors open 19:30. Row 12, seats 4-5.\n",
    ),
    Mail(
        "h2-ja-html-otp",
        "ワンタイムパスワードのお知らせ",
        html=_page(
            "<p>ワンタイムパスワード</p><p style='font-size:28px'>908172</p>"
            "<p>有効期限は5分です。</p>"
        ),
        cte="base64",
        code="908172",
    ),
    Mail(
        "h2-de-tan",
        "Ihre TAN",
        text="Ihre TAN lautet 372910. Sie ist 5 Minuten gültig.\n",
        code="372910",
    ),
    Mail(
        "h2-fr-after",
        "Confirmation",
        text="582013 est votre code de confirmation Acme.\n",
        code="582013",
    ),
    Mail(
        "h2-es-pairs",
        "Código de acceso: 55 12 09",
        text="Hola, introduce el código en la aplicación.\n",
        code="55 12 09",
    ),
    Mail(
        "h2-verify-link-only",
        "Please verify your email",
        html=_page(
            "<p>Almost done! Click to verify your email address.</p>"
            + _button("https://id.acme.example/e/verify/Zm9vYmFyYmF6MTIzNDU2", "Verify email")
        ),
        link="https://id.acme.example/e/verify/Zm9vYmFyYmF6MTIzNDU2",
    ),
    Mail(
        "h2-text-signin-short-url",
        "Sign in to Acme",
        text="Sign in to Acme by clicking: https://acme.example/s/AbC123xYz789QwErTy\n",
        cte="7bit",
        link="https://acme.example/s/AbC123xYz789QwErTy",
    ),
    Mail(
        "h2-card-receipt-auth-code",
        "Your receipt from Corner Cafe",
        text="Corner Cafe\n2 x Espresso  6.00\nVISA ****4821\nAuth code: 004512\nTotal EUR 6.00\n",
    ),
    Mail(
        "h2-uber",
        "Uber",
        text="Your Uber code: 1234. Never share this code.\n",
        code="1234",
    ),
    Mail(
        "h2-invite-accept-decline",
        "You're invited to Acme Workspace",
        html=_page(
            "<p>Jo invited you to Acme Workspace.</p>"
            + _button("https://acme.example/invite/accept?i=31ab7c9d02ef4411", "Join workspace")
            + '<p><a href="https://acme.example/invite/decline?i=31ab7c9d02ef4411">Decline</a></p>'
        ),
        link="https://acme.example/invite/accept?i=31ab7c9d02ef4411",
    ),
    Mail(
        "h2-reset-click-here",
        "Password reset",
        html=_page(
            "<p>To reset your password "
            '<a href="https://acme.example/reset-password/8c1d2e3f4a5b6c7d8e9f">click here</a>.</p>'
        ),
        cte="quoted-printable",
        link="https://acme.example/reset-password/8c1d2e3f4a5b6c7d8e9f",
    ),
    Mail(
        "h2-it-codice-after",
        "Codice",
        text="Ciao! Il codice per accedere è 6617. Scade tra 10 minuti.\n",
        code="6617",
    ),
]
